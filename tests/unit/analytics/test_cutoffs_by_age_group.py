"""Norms by age: the clinical cutoff every rule and chart uses is the instrument's for the
client's age group (ORS: 25 adults, 28 adolescents 13–17, 32 children 6–12); no age group, or
one the definition has no cutoff for, keeps the general cutoff; a site's override still wins."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.analytics.domain import RuleConfig
from services.analytics.reports import episode_chart
from tests.unit.analytics.builders import INSTRUMENTS, Episode

ORS = INSTRUMENTS["ors"]


def _not_on_track(episode: Episode) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in episode.changes if c.kind == "not_on_track"]


@pytest.mark.parametrize(
    ("age_group", "cutoff"),
    [("adult", "25"), ("adolescent", "28"), ("child", "32"), ("older_adult", "25"), (None, "25")],
)
def test_the_ors_definition_gives_each_age_group_its_cutoff(
    age_group: str | None, cutoff: str
) -> None:
    assert ORS.clinical is not None
    assert ORS.clinical.cutoff_for(age_group) == Decimal(cutoff)
    assert RuleConfig().thresholds(ORS, age_group).clinical_cutoff == Decimal(cutoff)


@pytest.mark.parametrize(
    ("age_group", "first", "expected"),
    [
        ("adolescent", "27.9", [("open", 4)]),  # below 28: in the clinical range
        ("adolescent", "28.0", []),
        ("adult", "24.9", [("open", 4)]),  # below 25
        ("adult", "25.0", []),
        ("adult", "27.9", []),  # an adolescent's clinical range, not an adult's
        ("child", "31.9", [("open", 4)]),  # below 32
        ("child", "32.0", []),
    ],
)
def test_rule_9_fallback_reads_the_clinical_range_of_the_clients_age_group(
    age_group: str, first: str, expected: list[tuple[str, int]]
) -> None:
    episode = Episode(age_group=age_group)
    episode.series("ors", first, first, first, first)

    assert _not_on_track(episode) == expected


def test_the_alert_names_the_cutoff_it_used() -> None:
    episode = Episode(age_group="adolescent")
    episode.series("ors", "27.0", "27.0", "27.0", "27.0")

    assert episode.opened("not_on_track")[0].inputs["clinical_cutoff"] == 28.0


def test_a_late_record_rebuilds_the_episode_with_the_same_age_group() -> None:
    episode = Episode(age_group="adolescent")
    episode.series("ors", "27.0", "27.0", "27.0", first_session=1)
    episode.add(5, "ors", "27.0")
    episode.add(4, "ors", "27.0")  # late: the episode is re-evaluated

    assert episode.state is not None and episode.state.rebuilds == 1
    (still_open,) = episode.open_now("not_on_track")
    assert still_open.inputs["clinical_cutoff"] == 28.0


def test_a_sites_clinical_cutoff_override_wins_over_the_age_group() -> None:
    config = RuleConfig.for_site({"instruments": {"ors": {"clinical_cutoff": "30"}}})

    assert config.thresholds(ORS, "adolescent").clinical_cutoff == Decimal(30)
    assert config.thresholds(ORS, "child").clinical_cutoff == Decimal(30)


class _Score:
    def __init__(self, session: int, score: float) -> None:
        self.session_number, self.score = session, score
        self.respondent, self.respondent_role, self.instrument = "c-1", "client", "ors"


class _Timeline:
    site_id, therapist_id, phase = "site-a", "th-1", "active"
    scores = [_Score(1, 27.0), _Score(2, 27.5)]
    alerts: list[object] = []
    sessions: list[object] = []
    phases: list[object] = []


@pytest.mark.parametrize(("age_group", "line"), [("adolescent", 28.0), ("adult", 25.0)])
def test_the_charts_cutoff_line_is_the_clients_own(age_group: str, line: float) -> None:
    chart = episode_chart(_Timeline(), INSTRUMENTS, None, age_group)  # type: ignore[arg-type]

    (ors,) = [p for p in chart.panels if "ORS" in p.title]
    assert ors.reference == line
    assert ors.reference_label == f"clinical cutoff ({line:g})"
