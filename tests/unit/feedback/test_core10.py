"""CORE-10 shipped as a definition (issue 18, item 5): ten items 0–4, items 2 and 3 reversed,
total 0–40, clinical cutoff 11 (higher is worse), reliable change 6, item 6 a risk item,
severity bands; ids and scoring only. Scored by the kernel's ``Instrument.total`` (as the
feedback service and the replay score), and treated by the alert rules as PHQ-9 is (rule 1 on
its risk item, rules 8 and 9)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rapport import replay
from services.feedback.domain import check_answers, in_concern_or_clinical_range, score
from shared.instruments import SHIPPED, load_instruments

CORE_10 = load_instruments(SHIPPED)["core-10"]


def answers(**items: int) -> dict[str, object]:
    """All ten items 0, except those given (``item_6=1``)."""
    given = {k.removeprefix("item_"): v for k, v in items.items()}
    return {str(i): given.get(str(i), 0) for i in range(1, 11)}


def test_core10_is_ten_items_of_0_to_4_for_the_client_without_wording() -> None:
    assert CORE_10.items == [str(i) for i in range(1, 11)]
    assert (CORE_10.item_min, CORE_10.item_max, CORE_10.step) == (
        Decimal(0),
        Decimal(4),
        Decimal(1),
    )
    assert (CORE_10.total_min, CORE_10.total_max) == (Decimal(0), Decimal(40))
    assert CORE_10.respondents == ["client"]
    assert CORE_10.kind == "symptom"  # as PHQ-9 and GAD-7: rules 8 and 9 apply
    assert CORE_10.clinical is not None
    assert CORE_10.clinical.direction == "higher_is_worse"
    assert CORE_10.clinical.cutoff == 11
    assert CORE_10.reliable_change == 6
    assert CORE_10.free_to_use is False
    assert CORE_10.wording == {} and CORE_10.preamble is None and CORE_10.answers == []


@pytest.mark.parametrize(
    ("items", "total"),
    [
        (answers(), 8),  # items 2 and 3 at 0 count 4 each
        (answers(item_2=4, item_3=4), 0),
        ({str(i): 4 for i in range(1, 11)}, 32),
        ({**{str(i): 4 for i in range(1, 11)}, "2": 0, "3": 0}, 40),
        (answers(item_1=3, item_2=1, item_3=2), 3 + 3 + 2 + 0),
    ],
)
def test_the_total_counts_items_2_and_3_reversed(items: dict[str, object], total: int) -> None:
    assert check_answers(CORE_10, "client", items) == []
    assert CORE_10.total({k: int(str(v)) for k, v in items.items()}) == total
    assert score(CORE_10, items).total == total


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "healthy"),
        (5, "healthy"),
        (6, "low"),
        (10, "low"),
        (11, "mild"),
        (14, "mild"),
        (15, "moderate"),
        (19, "moderate"),
        (20, "moderately_severe"),
        (24, "moderately_severe"),
        (25, "severe"),
        (40, "severe"),
    ],
)
def test_severity_bands_at_each_edge(total: int, band: str) -> None:
    # Items 2 and 3 at 4 count 0; the others (4 × 8 = 32 at most) make up the total, item 6
    # (the risk item) last.
    items: dict[str, int] = {"2": 4, "3": 4}
    left = total
    for item in ("1", "4", "5", "7", "8", "9", "10", "6"):
        items[item] = min(4, left)
        left -= items[item]
    if left:  # 33–40: items 2 and 3 below 4 count the rest
        items["2"] = 4 - min(4, left)
        items["3"] = 4 - (left - min(4, left))

    scored = score(CORE_10, dict(items))

    assert scored.total == total
    assert scored.band == band


@pytest.mark.parametrize(("total", "clinical"), [(10, False), (11, True), (12, True)])
def test_the_clinical_range_starts_at_11(total: int, clinical: bool) -> None:
    assert in_concern_or_clinical_range(CORE_10, Decimal(total), {}) is clinical


def test_item_6_above_0_is_a_risk_item_and_at_0_is_not() -> None:
    assert score(CORE_10, answers(item_6=1)).risk_items == {"6": 1}
    assert score(CORE_10, answers(item_6=0, item_1=4, item_4=4)).risk_items == {}


def _line(session: int, items: dict[str, object], **fields: Any) -> str:
    return json.dumps(
        {
            "episode_id": "ep-1",
            "site_id": "site-a",
            "therapist_id": "th-1",
            "session": session,
            "at": f"2026-01-{session:02d}T10:00:00Z",
            "respondent": "client",
            "respondent_id": "ep-1-c",
            "instrument": "core-10",
            "items": items,
            **fields,
        }
    )


def _replay(
    tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]], str]:
    source, out = tmp_path / "in.jsonl", tmp_path / "alerts.jsonl"
    source.write_text("".join(x + "\n" for x in lines))
    code = replay.main([str(source), "--out", str(out)])
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    return code, alerts, capsys.readouterr().err


def test_the_replay_opens_a_risk_alert_on_core10_item_6(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, alerts, err = _replay(tmp_path, [_line(1, answers(item_6=2))], capsys)

    assert code == 0, err
    assert "0 bad lines" in err
    (risk,) = [a for a in alerts if a["kind"] == "risk"]
    assert risk["instrument"] == "core-10"
    assert risk["severity"] == "urgent"
    assert risk["inputs"]["item_6"] == 2


def test_the_replay_refuses_a_partner_answering_core10(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _replay(tmp_path, [_line(1, answers(), respondent="partner")], capsys)

    assert code == 0
    assert ":1: core-10 may not be answered by a partner" in err


def test_the_replay_scores_core10_reversed_for_deterioration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        _line(1, answers()),  # 8
        # Raw items add up to 14, but items 2 and 3 at 4 count 0: 6, better than 8.
        _line(2, answers(item_1=2, item_2=4, item_3=4, item_4=2, item_5=2)),
        # 4 + 4 (items 2 and 3 at 0) + 3 × 2 = 14: worse than 8 by exactly the reliable change.
        _line(3, answers(item_1=2, item_4=2, item_5=2)),
    ]

    code, alerts, err = _replay(tmp_path, lines, capsys)

    assert code == 0, err
    (deterioration,) = [a for a in alerts if a["kind"] == "deterioration"]
    assert deterioration["session"] == 3
    assert deterioration["inputs"]["first"] == 8
    assert deterioration["inputs"]["score"] == 14
    assert deterioration["inputs"]["direction"] == "higher_is_worse"
