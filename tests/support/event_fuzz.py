"""Hypothesis strategies for event consumers: schema-valid event data drawn from each event
type's own JSON Schema (the one published in docs/events/), and messages that break exactly
one rule a consumer must enforce — malformed or truncated JSON, an oversized body, a wrong type
version, a missing or non-UTF-8 CloudEvents attribute, a field of the wrong type."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

from shared.events import MAX_EVENT_BYTES, REQUIRED_ATTRIBUTES, Event, EventType, encode

Json = Any


def from_schema(
    schema: dict[str, Any], defs: dict[str, Any] | None = None
) -> st.SearchStrategy[Json]:
    """Values of the subset of JSON Schema that Pydantic emits for our event models."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(defs[schema["$ref"].split("/")[-1]], defs))
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(schema.get("minimum", -1e6), schema.get("maximum", 1e6), allow_nan=False)
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(max_size=schema.get("maxLength", 40))
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), defs), max_size=3)
    if kind == "object":
        return _object(schema, defs)
    return st.none()


def _object(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Json]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    if properties:
        fixed = {k: from_schema(v, defs) for k, v in properties.items() if k in required}
        optional = {k: from_schema(v, defs) for k, v in properties.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    values = schema.get("additionalProperties")
    for pattern_schema in schema.get("patternProperties", {}).values():
        values = pattern_schema
    keys = st.from_regex(r"^[a-z0-9_]{1,12}$", fullmatch=True)
    if isinstance(values, dict):
        return st.dictionaries(keys, from_schema(values, defs), max_size=3)
    return st.just({})


def valid_data(event_type: EventType[Any]) -> st.SearchStrategy[Any]:
    """Event data the type's model accepts (drawn from its schema, then validated)."""
    validate = event_type.data_model.model_validate

    def accepted(value: Json) -> bool:
        try:
            validate(value)
        except ValueError:
            return False
        return True

    return from_schema(event_type.json_schema()).filter(accepted).map(validate)


@dataclass(frozen=True)
class Message:
    defect: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    key: bytes


def valid_message(event_type: EventType[Any], data: Any, topic: str) -> Message:
    event = Event(event_type, data, source="/tests/fuzz", id=str(uuid.uuid4()))
    record = encode(event, topic)
    headers = tuple((k, v.encode()) for k, v in record.headers.items())
    return Message("none", record.value, headers, record.key or b"")


DEFECTS = (
    "malformed_json",
    "truncated",
    "oversized",
    "wrong_version",
    "missing_attribute",
    "non_utf8_attribute",
    "non_utf8_body",
    "wrong_field_type",
    "unknown_field",
    "not_an_object",
)

# A value no field of any event model accepts (no model has a list of lists of objects).
WRONG = [[{"wrong": None}]]


@st.composite
def broken(
    draw: st.DrawFn, event_type: EventType[Any], topic: str, defect: str | None = None
) -> Message:
    """A message of ``event_type`` on ``topic`` with exactly one defect (``defect``, or any)."""
    good = valid_message(event_type, draw(valid_data(event_type)), topic)
    defect = defect or draw(st.sampled_from(DEFECTS))
    value, headers = good.value, dict(good.headers)
    if defect == "malformed_json":
        value = draw(st.binary(max_size=200).filter(_not_json_object))
    elif defect == "truncated":
        value = value[: draw(st.integers(0, len(value) - 1))]
    elif defect == "oversized":
        # Still the same valid JSON, only padded beyond the limit.
        value = value + b" " * (MAX_EVENT_BYTES + 1 - len(value) + draw(st.integers(0, 4096)))
    elif defect == "wrong_version":
        version = draw(st.integers(0, 99).filter(lambda v: v != event_type.version))
        headers["ce_type"] = f"org.rapport.{event_type.name}.v{version}".encode()
    elif defect == "missing_attribute":
        del headers[draw(st.sampled_from(REQUIRED_ATTRIBUTES))]
    elif defect == "non_utf8_attribute":
        name = draw(st.sampled_from(sorted(headers)))
        headers[name] = draw(st.sampled_from((b"\xff\xfe", b"ok\xc3(", b"\x80")))
    elif defect == "non_utf8_body":
        cut = draw(st.integers(0, len(value)))
        value = value[:cut] + b"\xff" + value[cut:]
    elif defect in ("wrong_field_type", "unknown_field", "not_an_object"):
        data = json.loads(value)
        if defect == "wrong_field_type":
            data[draw(st.sampled_from(sorted(data)))] = WRONG
        elif defect == "unknown_field":
            data[draw(st.from_regex(r"^zz_[a-z]{1,8}$", fullmatch=True))] = 1
        else:
            data = draw(st.sampled_from([[data], "text", 42, None]))
        value = json.dumps(data).encode()
    return Message(defect, value, tuple(headers.items()), good.key)


def _not_json_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw), dict)
    except ValueError:
        return True
