"""``rapport replay`` with session lines and its clock (issue 16, item 5): session lines are
read and checked, missed sessions raise ``missed_sessions``, and the time-driven checks fire on
the replay's clock (the latest ``at`` seen) before the line that passes their due time, or at
the end with ``--as-of``, at the site-local midnight of the site's zone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.analytics.test_replay_command import SRS_OK, run

NEW_YORK = json.dumps({"site-ny": "America/New_York"})


def session(n: int, at: str, status: str = "attended", **fields: Any) -> str:
    row = {
        "episode_id": "ep-1",
        "site_id": "site-ny",
        "therapist_id": "th-1",
        "session": n,
        "at": at,
        "event": "session",
        "status": status,
        **fields,
    }
    return json.dumps({k: v for k, v in row.items() if v is not ...})


def answer(n: int, at: str, episode_id: str = "ep-1") -> str:
    return json.dumps(
        {
            "episode_id": episode_id,
            "site_id": "site-ny",
            "therapist_id": "th-1",
            "session": n,
            "at": at,
            "respondent": "client",
            "respondent_id": f"{episode_id}-c",
            "instrument": "srs",
            "items": SRS_OK,
        }
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (session(1, "2026-01-05T10:00:00"), "at must carry a UTC offset"),
        (session(1, "Monday"), "at must be an ISO 8601 date-time"),
        (session(1, "2026-01-05T10:00:00Z", status="scheduled"), "status must be one of"),
        (session(1, "2026-01-05T10:00:00Z", status=...), "session line: missing field(s) status"),
        (session(0, "2026-01-05T10:00:00Z"), "session must be an integer from 1"),
        (session(1, "2026-01-05T10:00:00Z", site_id=""), "site_id must be a non-empty string"),
        (session(1, "2026-01-05T10:00:00Z", event="visit"), "event must be 'session'"),
    ],
)
def test_a_bad_session_line_is_reported_with_its_line_and_field_and_skipped(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], bad: str, reason: str
) -> None:
    lines = [session(1, "2026-01-05T10:00:00-05:00"), bad]
    code, _, err = run(tmp_path, lines, capsys=capsys)

    assert code == 0
    assert f"in.jsonl:2: {reason}" in err
    assert "1 bad lines" in err and "1 session lines" in err


def test_two_missed_sessions_in_a_row_open_missed_sessions_at_the_second(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        session(1, "2026-01-05T10:00:00-05:00"),
        session(2, "2026-01-12T10:00:00-05:00", "missed"),
        session(3, "2026-01-19T10:00:00-05:00", "cancelled_by_clinic"),  # neither counts nor breaks
        session(4, "2026-01-26T10:00:00-05:00", "missed"),
        session(5, "2026-02-02T10:00:00-05:00", "attended"),
    ]
    code, rows, _ = run(
        tmp_path, lines, "--include-resolved", "--time-zones", NEW_YORK, capsys=capsys
    )

    assert code == 0
    missed = [r for r in rows if r["kind"] == "missed_sessions"]
    assert [(r["status"], r["session"], r["line"]) for r in missed] == [
        ("opened", 4, 4),
        ("resolved", 5, 5),
    ]


def test_no_contact_fires_before_the_line_that_passes_its_site_local_due_time(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contact on Monday 5 January in New York: due at midnight there beginning 26 January
    (05:00 UTC). A line of another episode at 04:59 UTC fires nothing; one at 05:00 fires it,
    before that line is applied, at the episode's latest session (its missed session 2)."""
    lines = [
        answer(1, "2026-01-05T23:30:00-05:00"),  # 6 January in UTC, 5 January in New York
        session(2, "2026-01-12T10:00:00-05:00", "missed"),
        answer(1, "2026-01-26T04:59:59Z", episode_id="ep-2"),
        answer(1, "2026-01-26T05:00:00Z", episode_id="ep-3"),
    ]
    code, rows, _ = run(tmp_path, lines, "--time-zones", NEW_YORK, capsys=capsys)

    assert code == 0
    silent = [r for r in rows if r["kind"] == "no_contact"]
    assert [(r["episode_id"], r["session"], r["line"], r["due_at"]) for r in silent] == [
        ("ep-1", 2, 4, "2026-01-26T00:00:00-05:00")
    ]
    assert silent[0]["inputs"]["days_without_contact"] == 21


@pytest.mark.parametrize(
    ("as_of", "fires"),
    [("2026-01-26T04:59:59Z", False), ("2026-01-26T05:00:00Z", True)],
)
def test_as_of_fires_the_checks_due_by_then_at_the_end(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], as_of: str, fires: bool
) -> None:
    """Day 20 after the contact (site-local): not yet; the midnight that begins day 21: fires."""
    lines = [session(1, "2026-01-05T10:00:00-05:00"), answer(1, "2026-01-05T10:00:00-05:00")]
    code, rows, _ = run(tmp_path, lines, "--time-zones", NEW_YORK, "--as-of", as_of, capsys=capsys)

    assert code == 0
    silent = [(r["kind"], r["session"], r["line"]) for r in rows if r["kind"] == "no_contact"]
    assert silent == ([("no_contact", 1, None)] if fires else [])


def test_a_contact_after_the_due_time_resolves_the_alert_it_first_fires(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [answer(1, "2026-01-05T10:00:00-05:00"), session(2, "2026-02-16T10:00:00-05:00")]
    code, rows, _ = run(
        tmp_path, lines, "--include-resolved", "--time-zones", NEW_YORK, capsys=capsys
    )

    assert code == 0
    assert [(r["kind"], r["status"], r["line"]) for r in rows if r["kind"] == "no_contact"] == [
        ("no_contact", "opened", 2),
        ("no_contact", "resolved", 2),
    ]


def test_the_clock_never_goes_back_for_a_late_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line that arrives late (an earlier ``at``) neither undoes nor repeats a check."""
    lines = [
        answer(1, "2026-01-05T10:00:00-05:00"),
        answer(1, "2026-03-02T10:00:00-05:00", episode_id="ep-2"),
        answer(1, "2026-01-06T10:00:00-05:00", episode_id="ep-3"),
    ]
    code, rows, _ = run(tmp_path, lines, "--time-zones", NEW_YORK, capsys=capsys)

    assert code == 0
    assert [(r["episode_id"], r["kind"]) for r in rows if r["kind"] == "no_contact"] == [
        ("ep-1", "no_contact")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-01-26T05:00:00"], "--as-of must carry a UTC offset"),
        (["--time-zones", '{"site-ny": "Mars/Olympus"}'], "site 'site-ny'"),
        (["--time-zones", "{not json"], "--time-zones: not JSON"),
    ],
)
def test_a_bad_clock_option_exits_2_saying_why(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(tmp_path, [answer(1, "2026-01-05T10:00:00Z")], *args, capsys=capsys)

    assert code == 2
    assert message in err


def kinds_fired(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["kind"], r["due_at"][:10]) for r in rows if r.get("due_at")]


def test_a_silent_episode_drops_out_at_day_28_and_is_followed_no_more(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in the service: intake drops the episode out at day 28, so rule 10's days without
    # contact (which alone would tip it at day 35) never fire; no_contact at day 21 does.
    lines = [session(1, "2026-01-05T10:00:00-05:00")]
    as_of = ["--as-of", "2026-03-30T00:00:00-04:00"]
    _, rows, _ = run(tmp_path, lines, "--time-zones", NEW_YORK, *as_of, capsys=capsys)
    assert kinds_fired(rows) == [("no_contact", "2026-01-26")]

    never = ["--dropout-after-days", "365"]
    _, rows, _ = run(tmp_path, lines, "--time-zones", NEW_YORK, *as_of, *never, capsys=capsys)
    assert [k for k, _ in kinds_fired(rows)] == ["no_contact", "dropout_risk"]


def test_a_client_who_returns_after_dropping_out_is_followed_again(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        session(1, "2026-01-05T10:00:00-05:00"),
        session(2, "2026-02-16T10:00:00-05:00"),  # day 42: dropped out at 28, returns
    ]
    as_of = ["--as-of", "2026-03-20T00:00:00-04:00"]
    _, rows, _ = run(tmp_path, lines, "--time-zones", NEW_YORK, *as_of, capsys=capsys)
    assert kinds_fired(rows) == [("no_contact", "2026-01-26"), ("no_contact", "2026-03-09")]
