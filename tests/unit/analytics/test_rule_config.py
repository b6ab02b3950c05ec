"""Per-site configuration: every number of the rules, defaults from docs/clinical-rules.md and the
instrument definitions, site overrides merged over them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.analytics.domain import RuleConfig
from tests.unit.analytics.builders import INSTRUMENTS, Episode


def test_defaults_are_domain_md_numbers() -> None:
    config = RuleConfig()

    assert config.early_alliance_sessions == (1, 2)
    assert config.unresolved_rupture_sessions == 3
    assert config.not_on_track_session == 4
    assert config.rematch_session == 6
    assert config.rematch_low_alliance_sessions == 2


@pytest.mark.parametrize(
    ("instrument", "total_below", "item_below", "rc", "cutoff"),
    [
        ("srs", 36, 9, 5, None),
        ("wai-sr", 36, None, 7, None),
        ("wai-sr-t", 36, None, 7, None),
        ("ors", None, None, 5, 25),
        ("phq-9", None, None, 6, 10),
        ("gad-7", None, None, 4, 8),
    ],
)
def test_instrument_thresholds_default_to_the_definitions(
    instrument: str, total_below: int | None, item_below: int | None, rc: int, cutoff: int | None
) -> None:
    th = RuleConfig().thresholds(INSTRUMENTS[instrument])

    assert th.concern_total_below == total_below
    assert th.concern_any_item_below == item_below
    assert th.reliable_change == rc
    assert th.clinical_cutoff == cutoff


def test_site_overrides_merge_into_the_defaults_key_by_key() -> None:
    config = RuleConfig.for_site(
        {"instruments": {"srs": {"reliable_change": "4.5"}}, "dropout_weights": {"open_rupture": 3}}
    )

    srs = config.thresholds(INSTRUMENTS["srs"])
    assert srs.reliable_change == Decimal("4.5")
    assert srs.concern_total_below == 36  # from the definition
    assert config.dropout_weights.open_rupture == 3
    assert config.dropout_weights.early_low_alliance == 2
    assert config.thresholds(INSTRUMENTS["wai-sr"]).reliable_change == 7


def test_a_site_config_layers_over_a_network_config() -> None:
    network = RuleConfig.for_site({"instruments": {"srs": {"reliable_change": 4}}})

    site = RuleConfig.for_site({"instruments": {"srs": {"concern_total_below": 34}}}, base=network)

    srs = site.thresholds(INSTRUMENTS["srs"])
    assert srs.reliable_change == 4
    assert srs.concern_total_below == 34


def test_decimal_overrides_stay_exact() -> None:
    config = RuleConfig.for_site({"instruments": {"ors": {"reliable_change": 0.1}}})

    assert config.thresholds(INSTRUMENTS["ors"]).reliable_change == Decimal("0.1")


@pytest.mark.parametrize(
    "overrides",
    [
        {"rupture_threshold": 5},
        {"instruments": {"srs": {"rc": 5}}},
        {"instruments": {"srs": {"reliable_change": 0}}},
        {"early_alliance_sessions": [0, 1]},
        {"unresolved_rupture_sessions": 0},
    ],
)
def test_unknown_or_impossible_settings_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RuleConfig.for_site(overrides)


def test_two_sites_with_different_thresholds_judge_the_same_scores_differently() -> None:
    strict = Episode(RuleConfig.for_site({"instruments": {"srs": {"concern_total_below": 38}}}))
    default = Episode()
    for episode in (strict, default):
        episode.add(3, "srs", "37.0")

    assert [c.kind for c in strict.opened()] == ["low_alliance"]
    assert default.opened() == []
    assert strict.opened()[0].inputs["concern_total_below"] == 38
