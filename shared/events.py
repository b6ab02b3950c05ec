"""CloudEvents 1.0 envelope in Kafka binary mode (``ce_*`` headers, JSON body).

An :class:`Event` is an immutable value: its id, type, source, subject, time and validated data.
:func:`encode` turns it into what Kafka carries; :func:`decode` turns a Kafka record back into an
:class:`Event` or raises :class:`InvalidEvent` with a reason fit for a dead-letter header.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "org.rapport."
MAX_EVENT_BYTES = 512 * 1024
REQUIRED_ATTRIBUTES = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")


class EventData(BaseModel):
    """Base of every event's data: closed (unknown fields are an error), immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


D = TypeVar("D", bound=EventData)


@dataclass(frozen=True)
class EventType(Generic[D]):
    """One versioned event type. Breaking changes are a new version, published side by side."""

    name: str  # e.g. "feedback.recorded"
    version: int
    data_model: type[D]
    description: str
    key_field: str  # the data field whose value is the partition key (episode or client)
    produced_by: str
    # Someone must hear of it now (a risk response): consumers read its topic on a consumer of
    # its own, so a backlog of routine records never holds it back.
    urgent: bool = False

    @property
    def type(self) -> str:
        return f"{TYPE_PREFIX}{self.name}.v{self.version}"

    @property
    def topic_name(self) -> str:
        """The topic without the deployment's prefix; one topic per type and version."""
        return f"{self.name}.v{self.version}"

    @property
    def dataschema(self) -> str:
        return f"urn:rapport:schema:{self.name}:v{self.version}"

    def json_schema(self) -> dict[str, Any]:
        schema = self.data_model.model_json_schema()
        schema["$id"] = self.dataschema
        schema["title"] = self.type
        schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Event(Generic[D]):
    type: EventType[D]
    data: D
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def subject(self) -> str:
        return str(getattr(self.data, self.type.key_field))

    @property
    def key(self) -> str:
        return self.subject


@dataclass(frozen=True)
class KafkaRecord:
    """What goes on (or comes off) the wire."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


class InvalidEvent(Exception):
    """A message that cannot be decoded or validated; it belongs in the dead-letter topic."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


class EventRegistry:
    """The known event types, by CloudEvents ``type``."""

    def __init__(self, types: Iterable[EventType[Any]]) -> None:
        self._by_type: dict[str, EventType[Any]] = {}
        for event_type in types:
            if event_type.type in self._by_type:
                raise ValueError(f"event type {event_type.type} registered twice")
            self._by_type[event_type.type] = event_type

    def __iter__(self) -> Any:
        return iter(self._by_type.values())

    def get(self, type_: str) -> EventType[Any] | None:
        return self._by_type.get(type_)


def encode(
    event: Event[Any], topic: str, extra_headers: Mapping[str, str] | None = None
) -> KafkaRecord:
    headers = {
        "ce_specversion": SPECVERSION,
        "ce_id": event.id,
        "ce_source": event.source,
        "ce_type": event.type.type,
        "ce_subject": event.subject,
        "ce_time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "ce_dataschema": event.type.dataschema,
        "content-type": CONTENT_TYPE,
        **(extra_headers or {}),
    }
    value = event.data.model_dump_json().encode()
    return KafkaRecord(topic=topic, key=event.key.encode(), value=value, headers=headers)


def header_dict(raw: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Kafka headers as text; a header that is not UTF-8 is an invalid event."""
    result: dict[str, str] = {}
    for name, value in raw or ():
        if name == "rapport-invalid-header":  # set by the subscriber's tolerant parser
            raise InvalidEvent(f"header {value.decode()!r} is not valid UTF-8")
        try:
            result[name] = value.decode("utf-8") if value is not None else ""
        except UnicodeDecodeError:
            raise InvalidEvent(f"header {name!r} is not valid UTF-8") from None
    return result


def decode(
    headers: Mapping[str, str],
    value: bytes | None,
    registry: EventRegistry,
    accepted: Iterable[str] | None = None,
) -> Event[Any]:
    """Validate a binary-mode CloudEvent and its data against the registered JSON schema."""
    event_id = headers.get("ce_id")
    missing = [a for a in REQUIRED_ATTRIBUTES if not headers.get(a)]
    if missing:
        raise InvalidEvent(f"missing CloudEvents attribute(s): {', '.join(missing)}", event_id)
    if headers["ce_specversion"] != SPECVERSION:
        raise InvalidEvent(f"unsupported specversion {headers['ce_specversion']!r}", event_id)
    assert event_id is not None
    if len(event_id) > 200:
        raise InvalidEvent("ce_id longer than 200 characters", None)
    type_name = headers["ce_type"]
    event_type = registry.get(type_name)
    if event_type is None:
        raise InvalidEvent(f"unknown event type {type_name!r}", event_id)
    if accepted is not None and type_name not in set(accepted):
        raise InvalidEvent(f"event type {type_name!r} not accepted on this topic", event_id)
    content_type = headers.get("content-type", CONTENT_TYPE).split(";")[0].strip()
    if content_type != CONTENT_TYPE:
        raise InvalidEvent(f"content-type {content_type!r} is not {CONTENT_TYPE}", event_id)
    if value is None:
        raise InvalidEvent("empty body", event_id)
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"body of {len(value)} bytes exceeds {MAX_EVENT_BYTES}", event_id)
    try:
        time = datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"ce_time {headers['ce_time']!r} is not RFC 3339", event_id) from None
    if time.tzinfo is None:
        raise InvalidEvent("ce_time has no time zone", event_id)
    try:
        payload = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"body is not UTF-8 JSON: {error}", event_id) from None
    try:
        data = event_type.data_model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise InvalidEvent(
            f"data does not match {event_type.dataschema}: {where}: {first['msg']}"
            f" ({error.error_count()} error(s))",
            event_id,
        ) from None
    return Event(type=event_type, data=data, source=headers["ce_source"], id=event_id, time=time)
