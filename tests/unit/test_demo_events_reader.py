"""``rapport events`` prints each CloudEvent as one JSON line: topic, key, type, subject, time
and the data, decoded from Kafka's binary-mode headers."""

from __future__ import annotations

import json
from types import SimpleNamespace

from rapport.events import as_json_line


def test_an_event_is_one_json_line_with_its_cloudevents_attributes() -> None:
    message = SimpleNamespace(
        topic="rapport.alliance.alert.v1",
        key=b"ep-1",
        value=b'{"kind": "rupture"}',
        headers=[
            ("ce_type", b"org.rapport.alliance.alert.v1"),
            ("ce_subject", b"ep-1"),
            ("ce_time", b"2026-01-05T09:00:00Z"),
        ],
    )
    assert json.loads(as_json_line(message)) == {
        "topic": "rapport.alliance.alert.v1",
        "key": "ep-1",
        "type": "org.rapport.alliance.alert.v1",
        "subject": "ep-1",
        "time": "2026-01-05T09:00:00Z",
        "data": {"kind": "rupture"},
    }


def test_a_body_that_is_not_json_is_printed_as_text() -> None:
    message = SimpleNamespace(topic="t", key=None, value=b"\xffnot json", headers=[])
    line = json.loads(as_json_line(message))
    assert line["key"] is None and line["type"] is None
    assert line["data"].endswith("not json")
