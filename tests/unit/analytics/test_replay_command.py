"""``rapport replay``: bad lines reported with their line numbers and skipped, the output
fields, resolves on request, per-site configuration, exit codes and the summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from rapport import replay
from services.analytics.domain import AlertChange
from shared.contracts import Code, Scalar
from tests.fixtures import REPLAY_SAMPLE

BASE = {
    "episode_id": "ep-1",
    "site_id": "site-a",
    "therapist_id": "th-1",
    "at": "2026-01-05T10:00:00Z",
    "respondent": "client",
    "respondent_id": "ep-1-c",
}
SRS_LOW = {"relationship": 9.0, "goals": 9.0, "approach": 9.0, "overall": 8.0}  # 35.0
SRS_OK = {"relationship": 10.0, "goals": 10.0, "approach": 10.0, "overall": 10.0}  # 40.0


def line(**fields: Any) -> str:
    row = {**BASE, "session": 1, "instrument": "srs", "items": SRS_OK, **fields}
    return json.dumps({k: v for k, v in row.items() if v is not ...})


def run(
    tmp_path: Path, lines: Sequence[str | bytes], *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]], str]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    out = tmp_path / "out.jsonl"
    code = replay.main([str(path), "--out", str(out), *args])
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return code, rows, capsys.readouterr().err


BAD_LINES: list[tuple[str | bytes, str]] = [
    ("this is not json", "not JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    (line(items=...), "missing field(s) items"),
    (line(instrument="core-34"), "unknown instrument 'core-34'"),
    (line(items={**SRS_OK, "overall": "9"}), "item overall must be a number"),
    (line(items={**SRS_OK, "overall": 10.5}), "must be from 0 to 10 in steps of 0.1, got 10.5"),
    (line(items={**SRS_OK, "overall": 9.25}), "in steps of 0.1, got 9.25"),
    (line(items={**SRS_OK, "mood": 9.0}), "unknown item(s) 'mood'"),
    (line(items={"relationship": 9.0, "goals": 9.0, "approach": 9.0}), "missing item(s) overall"),
    (line(respondent="therapist"), "srs may not be answered by a therapist"),
    (line(respondent="cousin"), "respondent must be one of"),
    (line(session=0), "session must be an integer from 1"),
    (line(session="2"), "session must be an integer from 1"),
    (line(episode_id=""), "episode_id must be a non-empty string"),
    (line(instrument="phq-9", items={str(i): 0 for i in range(1, 9)} | {"9": True}), "number"),
    (line(at="yesterday"), "at must be an ISO 8601 date-time"),
    (line(at="2026-01-05T10:00:00"), "at must carry a UTC offset"),
    (line() + " trailing", "not JSON: extra data"),
    (b'{"episode_id": "\xff"}', "invalid start byte"),
    (line(instrument="goals", items={}), "goals: needs at least one item"),
    (line(instrument="goals", items={"Goal one": 5}), "malformed item id(s) 'Goal one'"),
    (line(instrument="goals", items={f"g{i}": 5 for i in range(6)}), "at most 5 items, got 6"),
    (line(instrument="goals", items={"g1": 11}), "must be from 0 to 10 in steps of 1, got 11"),
    (line(instrument="support", items={"support": 5, "g1": 1}), "unknown item(s) 'g1'"),
]


def test_each_bad_line_is_reported_with_its_line_number_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str | bytes] = [line(session=1, items=SRS_LOW)]
    lines += [bad for bad, _ in BAD_LINES]
    lines += ["", line(session=2, items=SRS_LOW)]  # a blank line is not a record

    code, rows, err = run(tmp_path, lines, "--strict-ranges", capsys=capsys)

    assert code == 0
    reports = [x for x in err.splitlines() if not x.startswith("rapport replay:")]
    assert len(reports) == len(BAD_LINES)
    for number, (report, (_, reason)) in enumerate(zip(reports, BAD_LINES, strict=True), 2):
        assert report.startswith(f"{tmp_path / 'in.jsonl'}:{number}: "), report
        assert reason in report, report
    assert f"{len(BAD_LINES)} bad lines" in err
    assert "2 records" in err
    assert [(r["session"], r["kind"]) for r in rows] == [
        (1, "low_alliance"),
        (1, "early_alliance_risk"),
    ]


def test_the_output_names_rule_severity_respondent_inputs_and_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, rows, _ = run(tmp_path, [line(items=SRS_LOW)], capsys=capsys)

    low = rows[0]
    assert list(low)[:6] == ["episode_id", "session", "kind", "severity", "rule", "respondent_id"]
    assert low == {
        "episode_id": "ep-1",
        "session": 1,
        "kind": "low_alliance",
        "severity": "routine",
        "rule": "rule-2-low-alliance",
        "respondent_id": "ep-1-c",
        "status": "opened",
        "instrument": "srs",
        "scope": "respondent",
        "inputs": {
            "instrument": "srs",
            "score": 35.0,
            "concern_total_below": 36.0,
            "lowest_item": 8.0,
            "concern_any_item_below": 9.0,
        },
        "suggestion_code": "invite_feedback_on_the_relationship_next_session",
        "suggestion": low["suggestion"],
        "site_id": "site-a",
        "therapist_id": "th-1",
        "line": 1,
    }
    assert low["suggestion"]


def test_episode_level_alerts_name_the_respondent_whose_record_fired_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [line(items=SRS_OK), line(respondent="partner", respondent_id="ep-1-p", items=SRS_LOW)]

    _, rows, _ = run(tmp_path, lines, capsys=capsys)

    (split,) = [r for r in rows if r["kind"] == "split_alliance"]
    assert (split["respondent_id"], split["scope"], split["instrument"]) == (
        "ep-1-p",
        "episode",
        None,
    )


def test_resolves_are_written_only_when_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [line(session=3, items=SRS_LOW), line(session=4, items=SRS_OK)]

    _, default_rows, _ = run(tmp_path, lines, capsys=capsys)
    _, rows, err = run(tmp_path, lines, "--include-resolved", capsys=capsys)

    assert [r["status"] for r in default_rows] == ["opened"]
    assert [(r["status"], r["kind"], r["session"]) for r in rows] == [
        ("opened", "low_alliance", 3),
        ("resolved", "low_alliance", 4),
    ]
    assert rows[1]["opened_session"] == 3
    assert "1 alerts opened, 1 resolved" in err


def test_alerts_go_to_stdout_without_out_or_with_a_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line(items=SRS_LOW) + "\n")

    for argv in ([str(path)], [str(path), "--out", "-"]):
        assert replay.main(argv) == 0
        captured = capsys.readouterr()
        assert [json.loads(x)["kind"] for x in captured.out.splitlines()] == [
            "low_alliance",
            "early_alliance_risk",
        ]
        summary = captured.err.strip()
        assert summary.startswith("rapport replay: 1 records (1 episodes), 2 alerts opened")
        assert "0 bad lines" in summary and summary.endswith("records/s")


def test_an_input_that_cannot_be_opened_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay.main([str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line() + "\n")

    assert replay.main([str(path), "--out", str(tmp_path)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_site_configuration_applies_to_its_site_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sites.json"
    config.write_text(
        json.dumps({"sites": {"site-a": {"instruments": {"srs": {"concern_total_below": 38}}}}})
    )
    srs_37 = {"relationship": 10.0, "goals": 9.0, "approach": 9.0, "overall": 9.0}
    lines = [
        line(session=3, items=srs_37),
        line(session=3, episode_id="ep-2", site_id="site-b", items=srs_37),
    ]

    _, rows, _ = run(tmp_path, lines, "--config", str(config), capsys=capsys)

    assert [(r["episode_id"], r["kind"]) for r in rows] == [("ep-1", "low_alliance")]


def test_a_bad_configuration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sites.json"
    config.write_text(json.dumps({"default": {"rupture": 5}}))
    path = tmp_path / "in.jsonl"
    path.write_text(line() + "\n")

    assert replay.main([str(path), "--config", str(config)]) == 2


def test_late_records_are_counted_in_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [line(session=1), line(session=3), line(session=2, items=SRS_LOW)]

    _, rows, err = run(tmp_path, lines, capsys=capsys)

    assert "1 late" in err
    assert ("low_alliance", 2, 3) in [(r["kind"], r["session"], r["line"]) for r in rows]


def test_the_fast_line_formatter_writes_the_documented_object() -> None:
    record = type("R", (), {"site_id": "site-\u00e9", "therapist_id": 'th-"1"'})()
    changes = [
        AlertChange(
            action=action,
            kind="split_alliance",
            severity="routine",
            rule="rule-6-split-alliance",
            episode_id="ep-1",
            respondent_id=respondent,
            instrument=instrument,
            session=4,
            opened_session=3,
            inputs={"difference": 5.0, "instrument": "srs", "flag": True, "none": None},
            suggestion_code="address_split_alliance",
            suggestion='Say "hello" — then listen.',
            triggered_by="ep-1-p",
        )
        for action in ("open", "resolve")
        for respondent, instrument in ((None, None), ("ep-1-c", "srs"))
    ]

    for change in changes:
        text = replay.format_line(change, record, 7)
        assert text.endswith("}\n") and text.count("\n") == 1
        assert json.loads(text) == json.loads(json.dumps(replay.output_line(change, record, 7)))


def test_every_alert_of_the_worked_example_fits_the_alliance_alert_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inputs go out on ``alliance.alert``: codes as keys, numbers or codes as values."""
    out = tmp_path / "out.jsonl"
    replay.main([str(REPLAY_SAMPLE), "--out", str(out), "--include-resolved"])
    inputs = TypeAdapter(dict[Code, Scalar])
    codes = TypeAdapter(Code)

    rows = [json.loads(x) for x in out.read_text().splitlines()]

    assert {r["kind"] for r in rows} >= {"rupture", "repair", "split_alliance", "dropout_risk"}
    for row in rows:
        assert inputs.validate_python(row["inputs"]) == row["inputs"]
        for field in ("kind", "rule", "suggestion_code"):
            codes.validate_python(row[field])


def test_a_byte_order_mark_and_surrounding_whitespace_are_not_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["\ufeff" + line(session=1, items=SRS_LOW), "  " + line(session=2) + "  \r"]

    code, rows, err = run(tmp_path, lines, capsys=capsys)

    assert code == 0 and "0 bad lines" in err and "2 records" in err
    assert [r["kind"] for r in rows][:1] == ["low_alliance"]
