"""The worked example of the rules (``tests/fixtures``, see its README): replaying it opens
exactly the expected alerts of rules 1–9, in order. A worked example, not the suite: every rule has
its own boundary tests beside this file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rapport import cli, replay
from tests.fixtures import REPLAY_SAMPLE as SAMPLE
from tests.fixtures import REPLAY_SAMPLE_EXPECTED as EXPECTED

# Rules 10-11, and the attendance rules 14-15: the example has no session lines, and the weeks
# between some of its questionnaires are silences no_contact follows (rapport replay's clock).
NOT_IN_THE_EXAMPLE = {"dropout_risk", "rematch_suggested", "missed_sessions", "no_contact"}
# Six SRS lines of the example carry an item above the instrument's maximum of 10 (10.1, 10.2);
# the expected alerts were computed with those lines replayed.
OUT_OF_RANGE_LINES = [35, 41, 57, 58, 168, 173]

Key = tuple[str, int, str, str]


def _keys(path: Path) -> list[Key]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        (r["episode_id"], r["session"], r["kind"], r["respondent_id"])
        for r in rows
        if r["kind"] not in NOT_IN_THE_EXAMPLE
    ]


def test_the_worked_example_is_part_of_the_repository() -> None:
    repo = Path(__file__).resolve().parents[3]
    for path in (SAMPLE, EXPECTED):
        assert path.is_file() and path.resolve().is_relative_to(repo)


def test_replay_opens_exactly_the_expected_alerts_of_rules_1_to_9_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alerts.jsonl"

    assert replay.main([str(SAMPLE), "--out", str(out)]) == 0

    assert _keys(out) == _keys(EXPECTED)
    err = capsys.readouterr().err
    assert "247 records" in err and "0 bad lines (6 out-of-range accepted)" in err


def test_the_rapport_command_runs_the_same_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alerts.jsonl"

    assert cli.main(["replay", str(SAMPLE), "--out", str(out)]) == 0

    assert _keys(out) == _keys(EXPECTED)


def test_strict_replay_skips_the_six_out_of_range_lines_and_so_misses_one_rupture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --strict-ranges the out-of-range lines are bad lines: the partner of sample-0002
    then has no session-1 score, so nothing for the session-2 drop to be a rupture from."""
    out = tmp_path / "alerts.jsonl"

    assert replay.main([str(SAMPLE), "--out", str(out), "--strict-ranges"]) == 0

    err = capsys.readouterr().err
    reported = [int(line.split(":")[1]) for line in err.splitlines() if "must be from" in line]
    assert reported == OUT_OF_RANGE_LINES
    assert "6 bad lines" in err
    missing = ("sample-0002", 2, "rupture", "sample-0002-p")
    assert _keys(out) == [k for k in _keys(EXPECTED) if k != missing]
