"""A model file is refused, with a clear error naming where, when it does not match the schema
or the deployment's instruments; a good one loads and answers for a band and session."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from rapport.trajectories.model import ModelRefused, load_model
from shared.instruments import SHIPPED, load_instruments

INSTRUMENTS = load_instruments(SHIPPED)
CELL = {"n": 40, "p10": 10.0, "p25": 12.5, "p50": 15.0, "p75": 17.5, "p90": 20.0}
GOOD: dict[str, Any] = {
    "version": 1,
    "fitted_at": "2026-03-01T12:00:00Z",
    "min_episodes": 30,
    "percentile_method": "linear",
    "smoothing": "none",
    "data": {
        "lines": 100,
        "records": 99,
        "bad_lines": 1,
        "records_fitted": 80,
        "episodes": 40,
        "instruments": {"ors": {"records": 80, "episodes": 40}},
    },
    "instruments": {
        "ors": {"band_width": 5.0, "bands": {"3": {"sessions": {"1": CELL, "2": CELL}}}}
    },
    "skipped": [{"instrument": "ors", "band": 4, "session": 2, "n": 3}],
}


def _with(change: Callable[[dict[str, Any]], object]) -> str:
    model = copy.deepcopy(GOOD)
    change(model)
    return json.dumps(model)


def _ors_cell(model: dict[str, Any]) -> dict[str, Any]:
    cell: dict[str, Any] = model["instruments"]["ors"]["bands"]["3"]["sessions"]["2"]
    return cell


def test_a_good_model_loads_against_the_deployments_instruments() -> None:
    model = load_model(json.dumps(GOOD), INSTRUMENTS)

    ors = model.instruments["ors"]
    assert ors.at(Decimal("15.0"), 2) == ors.bands["3"].sessions["2"]
    assert ors.at(19.9, 1) is not None
    assert ors.at(Decimal("14.9"), 2) is None  # band 2: no data
    assert ors.at(15, 3) is None  # session 3: no data


SCHEMA_FAULTS: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("an empty object", lambda m: m.clear(), "version: Field required"),
    ("a newer version", lambda m: m.update(version=2), "version: Input should be 1"),
    ("no time", lambda m: m.pop("fitted_at"), "fitted_at: Field required"),
    (
        "a time without its offset",
        lambda m: m.update(fitted_at="2026-03-01T12:00:00"),
        "fitted_at: Input should have timezone info",
    ),
    (
        "percentiles out of order",
        lambda m: _ors_cell(m).update(p25=16.0),
        "instruments.ors.bands.3.sessions.2: Value error, percentiles must be in order",
    ),
    ("no episodes", lambda m: _ors_cell(m).update(n=0), "sessions.2.n: Input should be greater"),
    (
        "a missing percentile",
        lambda m: _ors_cell(m).pop("p90"),
        "instruments.ors.bands.3.sessions.2.p90: Field required",
    ),
    (
        "a band that is no number",
        lambda m: m["instruments"]["ors"]["bands"].update(x={"sessions": {}}),
        "instruments.ors.bands.x.[key]: String should match pattern",
    ),
    (
        "a session 0",
        lambda m: m["instruments"]["ors"]["bands"]["3"]["sessions"].update({"0": CELL}),
        "instruments.ors.bands.3.sessions.0.[key]: String should match pattern",
    ),
    (
        "a band width of 0",
        lambda m: m["instruments"]["ors"].update(band_width=0),
        "instruments.ors.band_width: Input should be greater than 0",
    ),
    ("an unknown field", lambda m: m.update(smoothed=True), "smoothed: Extra inputs"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(c, m) for _, c, m in SCHEMA_FAULTS],
    ids=[n for n, _, _ in SCHEMA_FAULTS],
)
def test_a_model_that_does_not_match_the_schema_is_refused_naming_where(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    with pytest.raises(ModelRefused, match="trajectory model refused") as refused:
        load_model(_with(change), INSTRUMENTS)

    assert message in str(refused.value)


def test_a_file_that_is_not_json_is_refused() -> None:
    with pytest.raises(ModelRefused, match=r"\(the file\): Invalid JSON"):
        load_model("{not json", INSTRUMENTS)


def _rename_ors(model: dict[str, Any], to: str) -> None:
    model["instruments"][to] = model["instruments"].pop("ors")


DEPLOYMENT_FAULTS: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    (
        "an instrument the deployment does not have",
        lambda m: _rename_ors(m, "core-34"),
        "instruments.core-34: not an instrument of this deployment",
    ),
    (
        "an alliance instrument",
        lambda m: _rename_ors(m, "srs"),
        "instruments.srs: has no clinical direction",
    ),
    (
        "percentiles above the total range",
        lambda m: _ors_cell(m).update(p90=40.5),
        "instruments.ors.bands.3.sessions.2: percentiles outside the total range 0–40",
    ),
    (
        "percentiles below the total range",
        lambda m: _ors_cell(m).update(p10=-1.0),
        "instruments.ors.bands.3.sessions.2: percentiles outside the total range 0–40",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(c, m) for _, c, m in DEPLOYMENT_FAULTS],
    ids=[n for n, _, _ in DEPLOYMENT_FAULTS],
)
def test_a_model_that_does_not_match_the_deployments_instruments_is_refused(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    text = _with(change)
    load_model(text)  # the schema alone takes it

    with pytest.raises(ModelRefused) as refused:
        load_model(text, INSTRUMENTS)

    assert message in str(refused.value)


def test_a_percentile_at_the_ends_of_the_total_range_is_accepted() -> None:
    def ends(model: dict[str, Any]) -> None:
        _ors_cell(model).update(p10=0.0, p90=40.0)

    assert load_model(_with(ends), INSTRUMENTS).instruments["ors"].bands["3"]


def test_every_fault_is_named_not_only_the_first() -> None:
    def two_faults(model: dict[str, Any]) -> None:
        model["instruments"]["core-34"] = model["instruments"]["ors"]
        _ors_cell(model).update(p90=41.0)

    with pytest.raises(ModelRefused) as refused:
        load_model(_with(two_faults), INSTRUMENTS)

    assert "instruments.core-34: not an instrument" in str(refused.value)
    assert "instruments.ors.bands.3.sessions.2: percentiles outside" in str(refused.value)
