"""Settings from the environment (``RAPPORT_*``), with safe local defaults.

A bad value stops start-up with one line naming the variable and the form it expects
(:class:`SettingsError`); nothing starts half-configured.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.site_time import SiteTimeZones, zone_named

DEV_SECRET = "rapport-development-only-secret-change-me"

_BOOTSTRAP = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")

# What each setting must look like, said in words for the one-line error.
EXPECTED_FORM: dict[str, str] = {
    "kafka_bootstrap": "comma-separated host:port pairs, e.g. 127.0.0.1:9092",
    "database_url": "postgresql+asyncpg://user:pass@host:port/db or sqlite+aiosqlite:///path.db",
    "migration_database_url": "postgresql+asyncpg://owner:pass@host:port/db (the tables' owner) "
    "or sqlite+aiosqlite:///path.db",
    "redis_url": "redis://host:port/db, rediss://… or memory:// (embedded)",
    "topic_prefix": "letters, digits, '.', '_' or '-' (may be empty)",
    "topic_partitions": "an integer from 1 to 1000",
    "topic_replication": "an integer from 1 to 10",
    "environment": "development or production",
    "log_level": "debug, info, warning or error",
    "jwt_secret": "a secret of at least 32 characters",
    "pseudonym_key": "a secret of at least 32 characters",
    "encryption_key": "a secret of at least 32 characters",
    "http_port": "a port number from 1 to 65535",
    "max_body_bytes": "an integer number of bytes from 1024 to 104857600",
    "rate_limit_per_site_per_minute": "an integer from 0 (no limit) to 1000000",
    "http_max_in_flight": "an integer from 0 (no limit) to 100000",
    "http_retry_after_seconds": "an integer number of seconds from 1 to 3600",
    "instruments_dir": "an existing folder of instrument definition files (*.json)",
    "kafka_security_protocol": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "kafka_sasl_mechanism": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    "kafka_ca_file": "an existing PEM file",
    "kafka_cert_file": "an existing PEM file",
    "kafka_key_file": "an existing PEM file",
    "rules_file": "an existing JSON file of alert-rule settings (default and per site)",
    "matching_file": "an existing JSON file of matching weights (default and per site)",
    "trajectories_file": "an existing JSON file of expected trajectories (rapport trajectories "
    "fit)",
    "trajectories_refit_hours": "a number of hours from 0 (off) to 8784",
    "consumer_batch_size": "an integer from 1 to 10000",
    "consumer_poll_ms": "an integer number of milliseconds from 1 to 5000",
    "consumer_linger_ms": "an integer number of milliseconds from 0 to 1000",
    "notify_public_base_url": "the public http(s) base URL of the feedback API, e.g. "
    "https://rapport.example.org",
    "notify_policy_file": "an existing JSON file of notify routing policies",
    "notify_smtp_host": "a host name or address of the SMTP server",
    "notify_smtp_port": "a port number from 1 to 65535",
    "notify_smtp_from": "an email address, e.g. rapport@clinic.example",
    "notify_smtp_tls": "none, starttls or tls",
    "notify_sms_provider_url": "an http(s) URL of the SMS provider's send endpoint",
    "notify_send_timeout_seconds": "a number of seconds above 0 and at most 120",
    "notify_concurrency": "an integer from 1 to 1000",
    "notify_endpoint_concurrency": "an integer from 1 to 1000",
    "notify_retry_schedule": "comma-separated delays in seconds between attempts, e.g. 5,300,1800",
    "notify_retry_jitter": "a fraction from 0 to 0.5",
    "notify_scheduler_seconds": "a number of seconds above 0 and at most 60",
    "notify_secret_rotation_seconds": "an integer number of seconds from 0 to 2592000",
    "site_time_zones": 'a JSON object of site id to IANA time zone, e.g. {"site-a": '
    '"Europe/Berlin"}',
    "default_time_zone": "an IANA time zone name, e.g. Europe/Berlin or UTC",
    "clock_sweep_seconds": "a number of seconds above 0 and at most 3600",
    "notify_ops_fallback_email": "an email address of the deployment's operations team, e.g. "
    "ops@clinic.example",
}


class SettingsError(Exception):
    """A setting is missing or malformed; ``str()`` is the one line to show the operator."""


class Settings(BaseSettings):
    """Everything a Rapport process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ca_file: str | None = None
    kafka_cert_file: str | None = None
    kafka_key_file: str | None = None
    kafka_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    # ``{service}`` is replaced by the service name, so the embedded default gives each
    # service its own SQLite file; one PostgreSQL URL serves all (tables are per service).
    database_url: str = "sqlite+aiosqlite:///.rapport/{service}.db"
    # ``rapport migrate`` connects as the tables' owner; the services connect with
    # ``database_url`` as an application role that is not the owner and has no BYPASSRLS (so
    # row-level security applies). Unset: the same URL (development). ``{service}`` as above.
    migration_database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    topic_prefix: str = "rapport."
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication: int = Field(default=1, ge=1, le=10)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=104_857_600)
    # Staff requests per site and minute (each request counts against every site of its
    # token); over it: 429 with Retry-After. 0 turns the limit off.
    rate_limit_per_site_per_minute: int = Field(default=6000, ge=0, le=1_000_000)
    # HTTP requests one process answers at once; one more gets 503 with Retry-After
    # (``http_retry_after_seconds``) before any work. 0 turns the limit off.
    http_max_in_flight: int = Field(default=32, ge=0, le=100_000)
    http_retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_audience: str = "rapport"
    jwt_issuer: str = "rapport-dev"
    pseudonym_key: SecretStr = SecretStr(DEV_SECRET)
    encryption_key: SecretStr = SecretStr(DEV_SECRET)
    # Development only: let webhooks target loopback/private addresses (SSRF guard off).
    allow_private_webhooks: bool = False
    # A folder of the site's own instrument definitions (JSON, as shared/instrument_definitions).
    instruments_dir: str | None = None
    # Analytics alert-rule configuration: {"default": {...}, "sites": {"<site>": {...}}}.
    rules_file: str | None = None
    # Intake matching weights, same shape (fields of services/intake/domain/matching/config.py).
    matching_file: str | None = None
    # Analytics' expected-trajectories model (rapport trajectories fit), re-read when it changes.
    trajectories_file: str | None = None
    # Analytics refits that model from its own closed episodes every this many hours (0: off).
    trajectories_refit_hours: float = Field(default=0, ge=0, le=24 * 366)
    # Each site's IANA time zone (JSON object, site id -> zone); sites not named use the default.
    # Schedules, availability, quiet hours, digests and day counts are site-local.
    site_time_zones: str | None = None
    default_time_zone: str = "UTC"
    # How often each service looks for its time-driven checks that fell due (no contact, ...).
    clock_sweep_seconds: float = Field(default=30.0, gt=0, le=3600)
    relay_batch_size: int = Field(default=200, ge=1, le=10_000)
    relay_idle_seconds: float = Field(default=2.0, gt=0, le=60)
    # Consumers apply up to this many records of one poll in one transaction.
    consumer_batch_size: int = Field(default=100, ge=1, le=10_000)
    # The longest a consumer waits for records in one poll (it returns as soon as any arrive).
    consumer_poll_ms: int = Field(default=500, ge=1, le=5_000)
    # After a poll's first records, how long a consumer waits for those right behind them.
    consumer_linger_ms: int = Field(default=5, ge=0, le=1_000)
    # -- notify ------------------------------------------------------------------------------
    # Where clients open their one-time feedback links: {base}/feedback/r/{token}.
    notify_public_base_url: str = "http://127.0.0.1:8000"
    # A deployment's own routing policies (JSON: {"default": {...}, "sites": {id: {...}}}).
    notify_policy_file: str | None = None
    # Email over SMTP; without a host, email deliveries fail with reason channel_not_configured.
    notify_smtp_host: str | None = None
    notify_smtp_port: int = Field(default=587, ge=1, le=65535)
    notify_smtp_username: str | None = None
    notify_smtp_password: SecretStr | None = None
    notify_smtp_from: str = "rapport@localhost"
    notify_smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    # SMS through a provider's HTTP interface: POST {to, text, reference} as JSON.
    notify_sms_provider_url: str | None = None
    notify_sms_provider_token: SecretStr | None = None
    # One send (webhook request, SMTP session, SMS request) never takes longer than this.
    notify_send_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    notify_concurrency: int = Field(default=64, ge=1, le=1000)
    notify_endpoint_concurrency: int = Field(default=8, ge=1, le=1000)
    # Delay before attempt n+1 (Standard-Webhooks-like: 10 attempts over about 3 days).
    notify_retry_schedule: str = "5,300,1800,7200,18000,36000,50400,72000,86400"
    notify_retry_jitter: float = Field(default=0.2, ge=0, le=0.5)
    # How often escalations, digests and reminders that fall due are looked for.
    notify_scheduler_seconds: float = Field(default=5.0, gt=0, le=60)
    # How long the previous webhook secret stays valid after a rotation.
    notify_secret_rotation_seconds: int = Field(default=86_400, ge=0, le=2_592_000)
    # Who hears of an urgent notice (risk) that no channel of its site can carry, when the site
    # has no fallback address of its own (PUT /notify/fallbacks/{site}). Needs email (SMTP).
    notify_ops_fallback_email: str | None = None

    @field_validator("site_time_zones")
    @classmethod
    def _site_time_zones(cls, value: str | None) -> str | None:
        if value is not None:
            SiteTimeZones.parse(value)
        return value

    @field_validator("default_time_zone")
    @classmethod
    def _default_time_zone(cls, value: str) -> str:
        zone_named(value)
        return value

    def time_zones(self) -> SiteTimeZones:
        """Each site's time zone (validated at start-up)."""
        return SiteTimeZones.parse(self.site_time_zones, self.default_time_zone)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",")]
        if not parts or not all(_BOOTSTRAP.match(p) for p in parts):
            raise ValueError("bad bootstrap")
        return ",".join(parts)

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("postgresql+asyncpg://", "sqlite+aiosqlite://")
        ):
            raise ValueError("bad database url")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("bad redis url")
        return value

    @field_validator("instruments_dir")
    @classmethod
    def _instruments_dir(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError("not a folder")
        return value

    @field_validator("kafka_ca_file", "kafka_cert_file", "kafka_key_file")
    @classmethod
    def _kafka_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("not a file")
        return value

    @model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_"):
            if self.kafka_sasl_mechanism is None:
                raise ValueError(
                    "kafka_sasl_mechanism: required with SASL (PLAIN, "
                    "SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                raise ValueError(
                    "kafka_sasl_username: a username and password are required with SASL"
                )
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("kafka_cert_file: goes with RAPPORT_KAFKA_KEY_FILE (mutual TLS)")
        return self

    @field_validator("rules_file", "matching_file", "trajectories_file", "notify_policy_file")
    @classmethod
    def _existing_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("not a file")
        return value

    @field_validator("notify_public_base_url", "notify_sms_provider_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("bad url")
        return value.rstrip("/") if value is not None else None

    @field_validator("notify_smtp_from", "notify_ops_fallback_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
            raise ValueError("bad address")
        return value

    @model_validator(mode="after")
    def _ops_fallback_by_email(self) -> Settings:
        if self.notify_ops_fallback_email and not self.notify_smtp_host:
            raise ValueError(
                "notify_ops_fallback_email: the ops fallback is told by email; "
                "set RAPPORT_NOTIFY_SMTP_HOST too"
            )
        return self

    @field_validator("notify_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("bad schedule") from None
        if not delays or len(delays) > 50 or any(not 0 < d <= 7 * 86_400 for d in delays):
            raise ValueError("bad schedule")
        return ",".join(part.strip() for part in value.split(","))

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._\-]*", value):
            raise ValueError("bad prefix")
        return value

    @field_validator("jwt_secret", "pseudonym_key", "encryption_key")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("too short")
        return value

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name in ("jwt_secret", "pseudonym_key", "encryption_key"):
                if getattr(self, name).get_secret_value() == DEV_SECRET:
                    raise ValueError(f"{name}: the development default is refused in production")
        return self

    def database_url_for(self, service: str) -> str:
        return self.database_url.replace("{service}", service)

    def migration_database_url_for(self, service: str) -> str:
        return (self.migration_database_url or self.database_url).replace("{service}", service)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def notify_retry_delays(self) -> tuple[float, ...]:
        """``notify_retry_schedule`` as seconds: the delay before attempt n+1."""
        return tuple(float(part) for part in self.notify_retry_schedule.split(","))


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    message = str(first.get("msg", "invalid"))
    if loc:
        field = loc[0]
    else:  # a model-level rule names its field at the start of its message
        field, _, message = message.removeprefix("Value error, ").partition(": ")
    variable = f"RAPPORT_{field.upper()}"
    expected = EXPECTED_FORM.get(field)
    given = first.get("input")
    shown = "" if field in {"jwt_secret", "pseudonym_key", "encryption_key"} else f", got {given!r}"
    if expected and loc:
        return f"{variable}: expected {expected}{shown}"
    return f"{variable}: {message.removeprefix('Value error, ')}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`SettingsError` with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def config_file_error(variable: str, error: Exception) -> SettingsError:
    """One line for a bad configuration file named by a setting: the field and the rule."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "(file)"
        return SettingsError(f"{variable}: {where}: {first.get('msg', 'invalid')}")
    return SettingsError(f"{variable}: {str(error).splitlines()[0] if str(error) else error!r}")
