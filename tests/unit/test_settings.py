"""Settings from the environment (shared/settings.py): a bad value stops start-up with one line
naming the RAPPORT_* variable and the form it expects."""

from __future__ import annotations

import os

import pytest

from rapport.cli import main
from shared.settings import DEV_SECRET, SettingsError, load_settings

GOOD_SECRET = "s3cr3t-" + "x" * 25  # 32 characters


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the RAPPORT_* variables it sets itself."""
    for name in list(os.environ):
        if name.startswith("RAPPORT_"):
            monkeypatch.delenv(name)


def error_for(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


# -- defaults and the real environment --------------------------------------------------------


def test_defaults_load_without_any_environment() -> None:
    settings = load_settings()

    assert settings.environment == "development"
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.database_url == "sqlite+aiosqlite:///.rapport/{service}.db"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.topic_prefix == "rapport."
    assert settings.topic_partitions == 6
    assert settings.max_body_bytes == 1_048_576


def test_values_are_read_from_rapport_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAPPORT_KAFKA_BOOTSTRAP", "kafka-0:9092, kafka-1:9092")
    monkeypatch.setenv("RAPPORT_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("RAPPORT_REDIS_URL", "memory://")
    monkeypatch.setenv("RAPPORT_TOPIC_PREFIX", "")

    settings = load_settings()

    assert settings.kafka_bootstrap == "kafka-0:9092,kafka-1:9092"
    assert settings.topic_partitions == 12
    assert settings.redis_url == "memory://"
    assert settings.topic("match.confirmed.v1") == "match.confirmed.v1"


def test_database_url_names_each_services_database() -> None:
    settings = load_settings(database_url="sqlite+aiosqlite:///data/{service}.db")

    assert settings.database_url_for("feedback") == "sqlite+aiosqlite:///data/feedback.db"


def test_migrations_use_the_owner_url_and_default_to_the_services_url() -> None:
    same = load_settings(database_url="postgresql+asyncpg://app:a@db:5432/{service}")
    owner = load_settings(
        database_url="postgresql+asyncpg://app:a@db:5432/rapport",
        migration_database_url="postgresql+asyncpg://owner:o@db:5432/rapport",
    )

    assert same.migration_database_url_for("intake") == "postgresql+asyncpg://app:a@db:5432/intake"
    assert owner.migration_database_url_for("intake").startswith("postgresql+asyncpg://owner:")
    assert owner.database_url_for("intake").startswith("postgresql+asyncpg://app:")


def test_a_bad_migration_database_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_for(monkeypatch, RAPPORT_MIGRATION_DATABASE_URL="mysql://x")

    assert message.startswith("RAPPORT_MIGRATION_DATABASE_URL: expected postgresql+asyncpg://")


def test_production_with_real_secrets_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPORT_ENVIRONMENT", "production")
    for name in ("RAPPORT_JWT_SECRET", "RAPPORT_PSEUDONYM_KEY", "RAPPORT_ENCRYPTION_KEY"):
        monkeypatch.setenv(name, GOOD_SECRET)

    assert load_settings().environment == "production"


# -- one line per bad value -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["localhost", "a:b", "kafka:9092,", "kafka:123456", ""])
def test_a_bad_kafka_bootstrap_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = error_for(monkeypatch, RAPPORT_KAFKA_BOOTSTRAP=value)

    assert message == (
        "RAPPORT_KAFKA_BOOTSTRAP: expected comma-separated host:port pairs, "
        f"e.g. 127.0.0.1:9092, got {value!r}"
    )


def test_a_bad_database_url_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_for(monkeypatch, RAPPORT_DATABASE_URL="mysql://x")

    assert message.startswith("RAPPORT_DATABASE_URL: expected postgresql+asyncpg://")
    assert message.endswith("got 'mysql://x'")


def test_a_bad_redis_url_names_the_variable_and_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_for(monkeypatch, RAPPORT_REDIS_URL="http://x")

    assert message.startswith("RAPPORT_REDIS_URL: expected redis://host:port/db")
    assert message.endswith("got 'http://x'")


def test_non_numeric_topic_partitions_gives_the_documented_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_for(monkeypatch, RAPPORT_TOPIC_PARTITIONS="six")

    assert message == "RAPPORT_TOPIC_PARTITIONS: expected an integer from 1 to 1000, got 'six'"


@pytest.mark.parametrize("value", ["0", "1001"])
def test_topic_partitions_out_of_range_names_the_range(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = error_for(monkeypatch, RAPPORT_TOPIC_PARTITIONS=value)

    assert message.startswith("RAPPORT_TOPIC_PARTITIONS: expected an integer from 1 to 1000, got ")
    assert value in message


@pytest.mark.parametrize("value", ["1", "1000"])
def test_topic_partitions_at_the_limits_are_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RAPPORT_TOPIC_PARTITIONS", value)

    assert load_settings().topic_partitions == int(value)


@pytest.mark.parametrize(
    ("variable", "value", "form"),
    [
        ("HTTP_MAX_IN_FLIGHT", "-1", "an integer from 0 (no limit) to 100000"),
        ("HTTP_MAX_IN_FLIGHT", "100001", "an integer from 0 (no limit) to 100000"),
        ("HTTP_MAX_IN_FLIGHT", "many", "an integer from 0 (no limit) to 100000"),
        ("HTTP_RETRY_AFTER_SECONDS", "0", "an integer number of seconds from 1 to 3600"),
        ("HTTP_RETRY_AFTER_SECONDS", "3601", "an integer number of seconds from 1 to 3600"),
    ],
)
def test_a_bad_admission_limit_names_the_variable_and_the_range(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, form: str
) -> None:
    message = error_for(monkeypatch, **{f"RAPPORT_{variable}": value})

    assert message == f"RAPPORT_{variable}: expected {form}, got {value!r}"


def test_the_admission_limit_defaults_and_its_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    monkeypatch.setenv("RAPPORT_HTTP_MAX_IN_FLIGHT", "0")
    monkeypatch.setenv("RAPPORT_HTTP_RETRY_AFTER_SECONDS", "3600")
    edges = load_settings()

    assert (defaults.http_max_in_flight, defaults.http_retry_after_seconds) == (32, 1)
    assert (edges.http_max_in_flight, edges.http_retry_after_seconds) == (0, 3600)


@pytest.mark.parametrize("value", ["a b", "rapport/", "ü."])
def test_a_bad_topic_prefix_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = error_for(monkeypatch, RAPPORT_TOPIC_PREFIX=value)

    assert message.startswith("RAPPORT_TOPIC_PREFIX: expected letters, digits")
    assert message.endswith(f"got {value!r}")


def test_a_value_with_a_newline_is_still_reported_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_for(monkeypatch, RAPPORT_TOPIC_PREFIX="rapport.\nevil")

    assert message.startswith("RAPPORT_TOPIC_PREFIX: ")


@pytest.mark.parametrize("variable", ["JWT_SECRET", "PSEUDONYM_KEY", "ENCRYPTION_KEY"])
def test_a_secret_of_31_characters_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    secret = "tooshort-" + "q" * 22  # 31 characters
    assert len(secret) == 31

    message = error_for(monkeypatch, **{f"RAPPORT_{variable}": secret})

    assert message == f"RAPPORT_{variable}: expected a secret of at least 32 characters"
    assert secret not in message
    assert "tooshort" not in message


@pytest.mark.parametrize("variable", ["JWT_SECRET", "PSEUDONYM_KEY", "ENCRYPTION_KEY"])
def test_a_secret_of_32_characters_is_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(f"RAPPORT_{variable}", GOOD_SECRET)

    settings = load_settings()

    assert getattr(settings, variable.lower()).get_secret_value() == GOOD_SECRET


def test_production_refuses_the_development_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_for(monkeypatch, RAPPORT_ENVIRONMENT="production")

    assert message.startswith("RAPPORT_JWT_SECRET: ")
    assert "development default" in message
    assert "production" in message
    assert DEV_SECRET not in message


def test_production_names_the_first_secret_still_at_the_development_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_for(
        monkeypatch, RAPPORT_ENVIRONMENT="production", RAPPORT_JWT_SECRET=GOOD_SECRET
    )

    assert message.startswith("RAPPORT_PSEUDONYM_KEY: ")
    assert DEV_SECRET not in message


def test_production_refuses_the_development_encryption_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_for(
        monkeypatch,
        RAPPORT_ENVIRONMENT="production",
        RAPPORT_JWT_SECRET=GOOD_SECRET,
        RAPPORT_PSEUDONYM_KEY=GOOD_SECRET,
    )

    assert message.startswith("RAPPORT_ENCRYPTION_KEY: ")


def test_an_unknown_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_for(monkeypatch, RAPPORT_ENVIRONMENT="staging")

    assert message == "RAPPORT_ENVIRONMENT: expected development or production, got 'staging'"


def test_keyword_overrides_are_checked_like_the_environment() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(topic_partitions=0)

    assert str(raised.value).startswith("RAPPORT_TOPIC_PARTITIONS: ")


def test_settings_are_immutable() -> None:
    settings = load_settings()

    with pytest.raises(ValueError):
        settings.topic_partitions = 3  # type: ignore[misc]


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_stops_with_exit_code_2_and_one_line_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAPPORT_TOPIC_PARTITIONS", "six")

    with pytest.raises(SystemExit) as raised:
        main(["settings"])

    assert raised.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "rapport: bad setting: RAPPORT_TOPIC_PARTITIONS: "
        "expected an integer from 1 to 1000, got 'six'"
    ]
    assert captured.out == ""


def test_cli_settings_prints_the_effective_settings_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAPPORT_JWT_SECRET", GOOD_SECRET)

    assert main(["settings"]) == 0

    out = capsys.readouterr().out
    assert '"topic_partitions": 6' in out
    assert GOOD_SECRET not in out
    assert DEV_SECRET not in out


# -- the ops fallback of undeliverable urgent notices ----------------------------------------------


def test_the_ops_fallback_email_needs_an_smtp_host(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_for(monkeypatch, RAPPORT_NOTIFY_OPS_FALLBACK_EMAIL="ops@clinic.example")

    assert message.startswith("RAPPORT_NOTIFY_OPS_FALLBACK_EMAIL: ")
    assert "RAPPORT_NOTIFY_SMTP_HOST" in message


def test_a_malformed_ops_fallback_email_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_for(
        monkeypatch,
        RAPPORT_NOTIFY_OPS_FALLBACK_EMAIL="not an address",
        RAPPORT_NOTIFY_SMTP_HOST="smtp.clinic.example",
    )

    assert message.startswith("RAPPORT_NOTIFY_OPS_FALLBACK_EMAIL: expected an email address")


def test_the_ops_fallback_email_with_an_smtp_host_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPORT_NOTIFY_OPS_FALLBACK_EMAIL", "ops@clinic.example")
    monkeypatch.setenv("RAPPORT_NOTIFY_SMTP_HOST", "smtp.clinic.example")

    assert load_settings().notify_ops_fallback_email == "ops@clinic.example"
    assert load_settings(notify_smtp_host="smtp.x").notify_ops_fallback_email is not None
