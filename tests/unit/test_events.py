"""The CloudEvents envelope (shared/events.py) and the event contracts (shared/contracts.py).

What goes on the wire is CloudEvents 1.0 in Kafka binary mode; whatever cannot be decoded or
validated is an :class:`InvalidEvent` whose reason ends up in a dead-letter header, so each
reason must say what was wrong.
"""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.contracts import (
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    REGISTRY,
    EpisodeMember,
    Id,
    MatchConfirmed,
    Pseudonym,
)
from shared.events import (
    MAX_EVENT_BYTES,
    REQUIRED_ATTRIBUTES,
    Event,
    EventData,
    InvalidEvent,
    decode,
    encode,
    header_dict,
)

CLIENT = "p1_" + "0123456789abcdef" * 2
CONFIRMED_AT = datetime(2025, 3, 4, 9, 30, 15, 123456, tzinfo=UTC)
TOPIC = "rapport.match.confirmed.v1"


def confirmed_data(**changes: Any) -> MatchConfirmed:
    values: dict[str, Any] = {
        "match_id": "m-1",
        "episode_id": "ep-42",
        "site_id": "site-a",
        "therapist_id": "th-7",
        "client": CLIENT,
        "domains": ["depression", "anxiety"],
        "severity": "moderate",
        "members": [EpisodeMember(respondent=CLIENT, role="client")],
        "confirmed_at": CONFIRMED_AT,
    }
    values.update(changes)
    return MatchConfirmed(**values)


def confirmed_event(**changes: Any) -> Event[MatchConfirmed]:
    return Event(
        type=MATCH_CONFIRMED,
        data=confirmed_data(**changes),
        source="/rapport/intake",
        id="evt-0001",
        time=datetime(2025, 3, 4, 9, 30, 16, tzinfo=UTC),
    )


def wire(changes: dict[str, str | None] | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a valid match.confirmed record, with some headers changed or
    removed (None)."""
    record = encode(confirmed_event(), TOPIC)
    headers = dict(record.headers)
    for name, value in (changes or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers, record.value


def reason_of(headers: dict[str, str], value: bytes | None, **kwargs: Any) -> str:
    with pytest.raises(InvalidEvent) as raised:
        decode(headers, value, REGISTRY, **kwargs)
    return raised.value.reason


# -- encode / decode ---------------------------------------------------------------------------


def test_encode_then_decode_keeps_id_type_source_subject_time_and_data() -> None:
    event = confirmed_event()
    record = encode(event, TOPIC)

    decoded = decode(record.headers, record.value, REGISTRY)

    assert decoded.id == event.id
    assert decoded.type is MATCH_CONFIRMED
    assert decoded.source == event.source
    assert decoded.subject == event.subject == "ep-42"
    assert decoded.time == event.time
    assert decoded.data == event.data


def test_encode_keeps_microseconds_and_converts_other_offsets_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = Event(
        type=MATCH_CONFIRMED,
        data=confirmed_data(),
        source="/rapport/intake",
        time=datetime(2025, 3, 4, 11, 30, 16, 250000, tzinfo=plus_two),
    )

    record = encode(event, TOPIC)

    assert record.headers["ce_time"] == "2025-03-04T09:30:16.250000Z"
    assert decode(record.headers, record.value, REGISTRY).time == event.time


def test_encode_writes_cloudevents_binary_mode_headers() -> None:
    record = encode(confirmed_event(), TOPIC)

    assert record.topic == TOPIC
    assert record.headers == {
        "ce_specversion": "1.0",
        "ce_id": "evt-0001",
        "ce_source": "/rapport/intake",
        "ce_type": "org.rapport.match.confirmed.v1",
        "ce_subject": "ep-42",
        "ce_time": "2025-03-04T09:30:16Z",
        "ce_dataschema": "urn:rapport:schema:match.confirmed:v1",
        "content-type": "application/json",
    }


def test_encode_writes_ce_time_as_rfc3339_utc_with_z() -> None:
    record = encode(confirmed_event(), TOPIC)

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", record.headers["ce_time"]), (
        record.headers["ce_time"]
    )


def test_encode_keys_the_record_by_the_event_types_partition_key_field() -> None:
    record = encode(confirmed_event(episode_id="ep-99"), TOPIC)

    assert MATCH_CONFIRMED.key_field == "episode_id"
    assert record.key == b"ep-99"
    assert record.headers["ce_subject"] == "ep-99"


def test_encode_adds_extra_headers_such_as_correlation_and_trace() -> None:
    extra = {"correlation_id": "c-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}

    record = encode(confirmed_event(), TOPIC, extra)

    assert record.headers["correlation_id"] == "c-1"
    assert record.headers["traceparent"] == extra["traceparent"]
    assert record.headers["ce_id"] == "evt-0001"


def test_encode_body_is_the_events_data_as_json() -> None:
    record = encode(confirmed_event(), TOPIC)

    body = json.loads(record.value)

    assert body["episode_id"] == "ep-42"
    assert body["client"] == CLIENT
    assert "ce_id" not in body


@pytest.mark.parametrize("attribute", REQUIRED_ATTRIBUTES)
def test_decode_rejects_a_message_missing_a_required_attribute(attribute: str) -> None:
    headers, value = wire({attribute: None})

    reason = reason_of(headers, value)

    assert reason.startswith("missing CloudEvents attribute")
    assert attribute in reason


@pytest.mark.parametrize("attribute", REQUIRED_ATTRIBUTES)
def test_decode_treats_an_empty_required_attribute_as_missing(attribute: str) -> None:
    headers, value = wire({attribute: ""})

    assert attribute in reason_of(headers, value)


def test_decode_names_every_missing_attribute_at_once() -> None:
    headers, value = wire({"ce_type": None, "ce_time": None})

    reason = reason_of(headers, value)

    assert "ce_type" in reason
    assert "ce_time" in reason


def test_decode_rejects_another_specversion() -> None:
    headers, value = wire({"ce_specversion": "0.3"})

    assert reason_of(headers, value) == "unsupported specversion '0.3'"


def test_decode_rejects_an_unknown_event_type() -> None:
    headers, value = wire({"ce_type": "org.rapport.match.confirmed.v9"})

    assert reason_of(headers, value) == "unknown event type 'org.rapport.match.confirmed.v9'"


def test_decode_rejects_a_known_type_not_accepted_on_this_topic() -> None:
    headers, value = wire()

    reason = reason_of(headers, value, accepted=[FEEDBACK_RECORDED.type])

    assert reason == "event type 'org.rapport.match.confirmed.v1' not accepted on this topic"


def test_decode_accepts_a_type_listed_as_accepted_on_this_topic() -> None:
    headers, value = wire()

    event = decode(headers, value, REGISTRY, accepted=[MATCH_CONFIRMED.type])

    assert event.type is MATCH_CONFIRMED


def test_decode_rejects_a_content_type_that_is_not_json() -> None:
    headers, value = wire({"content-type": "text/plain"})

    assert reason_of(headers, value) == "content-type 'text/plain' is not application/json"


def test_decode_accepts_json_content_type_with_parameters() -> None:
    headers, value = wire({"content-type": "application/json; charset=utf-8"})

    assert decode(headers, value, REGISTRY).id == "evt-0001"


def test_decode_rejects_a_missing_body() -> None:
    headers, _ = wire()

    assert reason_of(headers, None) == "empty body"


def test_decode_rejects_a_zero_length_body() -> None:
    headers, _ = wire()

    assert "body" in reason_of(headers, b"")


def test_decode_accepts_a_body_of_exactly_max_event_bytes() -> None:
    headers, value = wire()
    padded = value + b" " * (MAX_EVENT_BYTES - len(value))  # JSON allows trailing whitespace
    assert len(padded) == MAX_EVENT_BYTES

    assert decode(headers, padded, REGISTRY).data == confirmed_data()


def test_decode_rejects_a_body_one_byte_over_max_event_bytes() -> None:
    headers, value = wire()
    padded = value + b" " * (MAX_EVENT_BYTES + 1 - len(value))

    reason = reason_of(headers, padded)

    assert reason == f"body of {MAX_EVENT_BYTES + 1} bytes exceeds {MAX_EVENT_BYTES}"


def test_decode_accepts_a_ce_id_of_200_characters() -> None:
    headers, value = wire({"ce_id": "e" * 200})

    assert decode(headers, value, REGISTRY).id == "e" * 200


def test_decode_rejects_a_ce_id_of_201_characters() -> None:
    headers, value = wire({"ce_id": "e" * 201})

    assert reason_of(headers, value) == "ce_id longer than 200 characters"


def test_decode_rejects_ce_time_without_a_time_zone() -> None:
    headers, value = wire({"ce_time": "2025-03-04T09:30:16"})

    assert reason_of(headers, value) == "ce_time has no time zone"


@pytest.mark.parametrize("ce_time", ["yesterday", "2025-13-01T00:00:00Z", "04/03/2025 09:30"])
def test_decode_rejects_an_unparseable_ce_time(ce_time: str) -> None:
    headers, value = wire({"ce_time": ce_time})

    assert reason_of(headers, value) == f"ce_time {ce_time!r} is not RFC 3339"


def test_decode_accepts_ce_time_with_a_numeric_offset() -> None:
    headers, value = wire({"ce_time": "2025-03-04T11:30:16+02:00"})

    assert decode(headers, value, REGISTRY).time == datetime(2025, 3, 4, 9, 30, 16, tzinfo=UTC)


def test_decode_rejects_a_body_that_is_not_utf8() -> None:
    headers, _ = wire()

    assert reason_of(headers, b'{"episode_id": "\xff\xfe"}').startswith("body is not UTF-8 JSON")


def test_decode_rejects_a_body_that_is_not_json() -> None:
    headers, _ = wire()

    assert reason_of(headers, b"episode_id=ep-42").startswith("body is not UTF-8 JSON")


def test_decode_rejects_data_violating_the_schema_and_names_the_field() -> None:
    headers, value = wire()
    body = json.loads(value)
    body["client"] = "Jane Doe"

    reason = reason_of(headers, json.dumps(body).encode())

    assert reason.startswith("data does not match urn:rapport:schema:match.confirmed:v1: client:")


def test_decode_rejects_data_missing_a_required_field_and_names_it() -> None:
    headers, value = wire()
    body = json.loads(value)
    del body["therapist_id"]

    assert ": therapist_id: " in reason_of(headers, json.dumps(body).encode())


def test_decode_names_the_path_of_a_bad_nested_field() -> None:
    headers, value = wire()
    body = json.loads(value)
    body["members"][0]["role"] = "neighbour"

    assert ": members.0.role: " in reason_of(headers, json.dumps(body).encode())


def test_decode_rejects_an_unknown_extra_field_in_data() -> None:
    headers, value = wire()
    body = json.loads(value)
    body["notes"] = "client mentioned her divorce"

    reason = reason_of(headers, json.dumps(body).encode())

    assert ": notes: Extra inputs are not permitted" in reason


def test_decode_keeps_the_event_id_on_the_invalid_event_for_the_dead_letter() -> None:
    headers, _ = wire()

    with pytest.raises(InvalidEvent) as raised:
        decode(headers, b"not json", REGISTRY)

    assert raised.value.event_id == "evt-0001"


# -- header_dict --------------------------------------------------------------------------------


def test_header_dict_decodes_utf8_header_values() -> None:
    headers = header_dict([("ce_id", b"evt-1"), ("ce_source", "/rapport/é".encode())])

    assert headers == {"ce_id": "evt-1", "ce_source": "/rapport/é"}


def test_header_dict_rejects_a_header_value_that_is_not_utf8_and_names_it() -> None:
    with pytest.raises(InvalidEvent) as raised:
        header_dict([("ce_id", b"evt-1"), ("ce_source", b"\xff\xfe")])

    assert raised.value.reason == "header 'ce_source' is not valid UTF-8"


def test_header_dict_rejects_headers_marked_invalid_by_the_tolerant_parser() -> None:
    with pytest.raises(InvalidEvent) as raised:
        header_dict([("ce_id", b"evt-1"), ("rapport-invalid-header", b"ce_type")])

    assert raised.value.reason == "header 'ce_type' is not valid UTF-8"


def test_header_dict_of_no_headers_is_empty() -> None:
    assert header_dict(None) == {}


# -- contracts ----------------------------------------------------------------------------------


def test_pseudonym_accepts_p1_and_32_lowercase_hex() -> None:
    assert TypeAdapter(Pseudonym).validate_python(CLIENT) == CLIENT


@pytest.mark.parametrize(
    "value",
    [
        "Jane Doe",
        "p1_" + "0" * 31,
        "p1_" + "0" * 33,
        "p1_" + "A" * 32,
        "p2_" + "0" * 32,
        "p1_" + "g" * 32,
        " p1_" + "0" * 32,
        "",
    ],
)
def test_pseudonym_rejects_anything_but_p1_and_32_lowercase_hex(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Pseudonym).validate_python(value)


def test_a_contract_rejects_a_plain_name_as_the_client() -> None:
    with pytest.raises(ValidationError) as raised:
        confirmed_data(client="Jane Doe")

    assert raised.value.errors()[0]["loc"] == ("client",)


@pytest.mark.parametrize("value", ["ep-1", "EP_1", "site.a", "urn:x", "a" * 64])
def test_id_accepts_short_plain_identifiers(value: str) -> None:
    assert TypeAdapter(Id).validate_python(value) == value


@pytest.mark.parametrize("value", ["", "ep 1", " ep", "ep\n1", "-ep", "a" * 65, "ep/1"])
def test_id_rejects_empty_spaced_or_long_values(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Id).validate_python(value)


def test_contracts_are_closed_to_unknown_fields() -> None:
    with pytest.raises(ValidationError) as raised:
        MatchConfirmed.model_validate({**confirmed_data().model_dump(), "notes": "free text"})

    assert raised.value.errors()[0]["type"] == "extra_forbidden"


def test_every_registered_event_type_has_a_unique_cloudevents_type() -> None:
    types_ = [t.type for t in REGISTRY]

    assert len(types_) == len(set(types_))
    assert all(t.startswith("org.rapport.") for t in types_)


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_topic_name_is_the_name_and_version(event_type: Any) -> None:
    assert event_type.topic_name == f"{event_type.name}.v{event_type.version}"
    assert event_type.type == f"org.rapport.{event_type.topic_name}"


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_partition_key_field_exists_on_the_data_model(event_type: Any) -> None:
    assert event_type.key_field in event_type.data_model.model_fields


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_partition_key_field_is_a_required_identifier(event_type: Any) -> None:
    field = event_type.data_model.model_fields[event_type.key_field]

    assert field.is_required()
    assert _free_text_paths(field.annotation, field.metadata, event_type.key_field) == []


# -- no free text in topics --------------------------------------------------------------------

_SAFE_SCALARS: tuple[type, ...] = (bool, int, float, datetime, date, type(None))
_UNIONS = (Union, types.UnionType)


def _has_pattern(metadata: list[Any]) -> bool:
    return any(getattr(m, "pattern", None) for m in metadata)


def _free_text_paths(annotation: Any, metadata: list[Any], path: str) -> list[str]:
    """Paths of string values in a contract that are neither pattern-constrained nor Literal."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _free_text_paths(inner, [*metadata, *extra], path)
    if origin is Literal:
        return []
    if origin in _UNIONS:
        return [p for arg in get_args(annotation) for p in _free_text_paths(arg, metadata, path)]
    if origin in (list, set, frozenset, tuple, typing.Sequence):
        return [
            p
            for arg in get_args(annotation)
            if arg is not Ellipsis
            for p in _free_text_paths(arg, [], f"{path}[]")
        ]
    if origin is dict:
        key, value = get_args(annotation)
        return _free_text_paths(key, [], f"{path}<key>") + _free_text_paths(
            value, [], f"{path}{{}}"
        )
    if annotation is str:
        return [] if _has_pattern(metadata) else [path]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_free_text_paths(annotation, f"{path}.")
    if isinstance(annotation, type) and issubclass(annotation, _SAFE_SCALARS):
        return []
    return [f"{path} (unrecognised type {annotation!r})"]


def _model_free_text_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    return [
        path
        for name, field in model.model_fields.items()
        for path in _free_text_paths(field.annotation, list(field.metadata), f"{prefix}{name}")
    ]


def test_the_free_text_guard_finds_plain_strings_anywhere_in_a_contract() -> None:
    class Note(EventData):
        text: str

    class Leaky(EventData):
        episode_id: Id
        comment: str | None = None
        notes: list[Note] = []
        extras: dict[str, int] = {}
        scores: dict[Id, float | str] = {}

    assert _model_free_text_paths(Leaky) == [
        "comment",
        "notes[].text",
        "extras<key>",
        "scores{}",
    ]


def test_the_free_text_guard_accepts_patterns_literals_numbers_and_datetimes() -> None:
    class Tight(EventData):
        episode_id: Id
        role: Literal["client", "therapist"]
        members: list[EpisodeMember]
        scores: dict[Id, float]
        at: datetime
        maybe: Pseudonym | None = None

    assert _model_free_text_paths(Tight) == []


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_no_contract_carries_free_text(event_type: Any) -> None:
    """Every string in a topic is an id, a code, a pseudonym or an enumerated value."""
    assert _model_free_text_paths(event_type.data_model) == []
