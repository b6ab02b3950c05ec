"""The hand-written reference pages stay true to the code: docs/settings.md lists every setting
with its default, docs/events.md every event with its key, producer and consumers, and nothing
in the repository points to a file outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import services
from shared.contracts import REGISTRY
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _rows(page: Path, first_cell: str) -> dict[str, list[str]]:
    """Table rows whose first cell is a code span matching ``first_cell``: name → cells."""
    rows: dict[str, list[str]] = {}
    for line in page.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(rf"`({first_cell})`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def _documented_default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "development value"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


SETTINGS = _rows(DOCS / "settings.md", r"RAPPORT_[A-Z0-9_]+")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_listed_with_its_default(field: str) -> None:
    variable = f"RAPPORT_{field.upper()}"
    assert variable in SETTINGS, f"{variable} is missing from docs/settings.md"
    assert SETTINGS[variable][0] == _documented_default(Settings.model_fields[field].default)


def test_the_settings_page_lists_no_setting_that_does_not_exist() -> None:
    known = {f"RAPPORT_{field.upper()}" for field in Settings.model_fields}
    assert set(SETTINGS) - known == set()


EVENTS = _rows(DOCS / "events.md", r"[a-z_.]+\.v[0-9]+")


def _consumers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for definition in services.definitions():
        for subscription in definition.subscriptions:
            found.setdefault(subscription.event_type.name, set()).add(
                f"{definition.name} (`{subscription.name}`)"
            )
    return found


@pytest.mark.parametrize("event_type", list(REGISTRY), ids=lambda t: t.name)
def test_every_event_is_in_the_catalogue_with_its_key_producer_and_consumers(
    event_type: Any,
) -> None:
    name = f"{event_type.name}.v{event_type.version}"
    assert name in EVENTS, f"{name} is missing from docs/events.md"
    key, producer, consumers, _ = EVENTS[name]
    assert key == f"`{event_type.key_field}`"
    assert producer == event_type.produced_by
    expected = _consumers().get(event_type.name, set())
    listed = set() if consumers.startswith("none") else set(consumers.split(", "))
    assert listed == expected


def test_the_catalogue_lists_no_event_that_does_not_exist() -> None:
    assert set(EVENTS) == {f"{t.name}.v{t.version}" for t in REGISTRY}


def test_nothing_in_the_repository_points_outside_it() -> None:
    """Code, comments, docs and the README refer to the project's own files only."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    outside = re.compile(r"\.\./shared\b|\b(ARCHITECTURE|DOMAIN|STYLE)\.md\b")
    offenders = [
        f"{name}:{number}"
        for name in tracked.split("\0")
        if name and (ROOT / name).is_file() and not name.endswith((".json", ".jsonl"))
        for number, line in enumerate(
            (ROOT / name).read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        if outside.search(line)
    ]
    assert offenders == []
