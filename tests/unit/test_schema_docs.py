"""The checked-in data-team documentation (docs/events, docs/asyncapi) is what the code exports.

When one of these fails, the contracts or the subscribers changed without the documents:
run ``make docs`` and commit the result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rapport.docs import asyncapi_documents, schema_documents
from shared.contracts import REGISTRY

DOCS = Path(__file__).resolve().parents[2] / "docs"
HINT = "the checked-in docs drifted from the code: run `make docs` and commit docs/"


def checked_in(folder: str) -> dict[str, Any]:
    return {p.name: json.loads(p.read_text()) for p in sorted((DOCS / folder).glob("*.json"))}


def as_json(documents: dict[str, Any]) -> dict[str, Any]:
    """What ``make docs`` would write, read back (tuples become lists and so on)."""
    result: dict[str, Any] = json.loads(json.dumps(documents, sort_keys=True))
    return result


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Export as ``make docs`` does on a fresh clone: no RAPPORT_* settings from the shell, and
    any database file the hosts would create kept out of the working tree."""
    for name in list(os.environ):
        if name.startswith("RAPPORT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/{{service}}.db")


def test_event_schemas_in_docs_are_the_exported_ones() -> None:
    expected = as_json(schema_documents())
    actual = checked_in("events")

    assert sorted(actual) == sorted(expected), f"{HINT} (files differ)"
    for name, document in expected.items():
        assert actual[name] == document, f"docs/events/{name}: {HINT}"


@pytest.mark.usefixtures("clean_environment")
def test_asyncapi_documents_in_docs_are_the_exported_ones() -> None:
    expected = as_json(asyncapi_documents())
    actual = checked_in("asyncapi")

    assert sorted(actual) == sorted(expected), f"{HINT} (files differ)"
    for name, document in expected.items():
        assert actual[name] == document, f"docs/asyncapi/{name}: {HINT}"


@pytest.mark.usefixtures("clean_environment")
def test_asyncapi_export_does_not_depend_on_the_exporters_kafka_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``make docs`` run in a shell with the local stack's settings (``eval "$(rapport stack
    env)"``) must write the same documents as on a fresh clone."""
    monkeypatch.setenv("RAPPORT_KAFKA_BOOTSTRAP", "10.20.30.40:19092")

    assert as_json(asyncapi_documents()) == checked_in("asyncapi"), HINT


def test_there_is_one_schema_document_per_registered_event_type() -> None:
    assert sorted(checked_in("events")) == sorted(f"{t.type}.json" for t in REGISTRY)


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_each_exported_schema_is_identified_by_its_dataschema(event_type: Any) -> None:
    document = checked_in("events")[f"{event_type.type}.json"]

    assert document["$id"] == event_type.dataschema
    assert document["title"] == event_type.type


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_each_exported_schema_is_closed_including_nested_objects(event_type: Any) -> None:
    document = checked_in("events")[f"{event_type.type}.json"]

    assert document["additionalProperties"] is False
    for name, nested in document.get("$defs", {}).items():
        assert nested.get("additionalProperties") is False, f"$defs/{name} is open"
