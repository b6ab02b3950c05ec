"""An expected-trajectories model file: its schema, and the check that refuses a bad one.

A model gives, per outcome instrument, per starting band (``floor(first score / band width)``)
and per session number, the 10th, 25th, 50th, 75th and 90th percentiles of the clients' totals
and how many episodes they come from (docs/trajectories.md). :func:`load_model` is what a
reader of a model file (analytics, ``rapport replay --trajectories``) calls: it refuses a file
that does not match the schema, or that names instruments the deployment does not have or that
have no clinical direction, with one error naming every fault and where it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.instruments import Instrument

MODEL_VERSION = 1
PERCENTILES = (10, 25, 50, 75, 90)

InstrumentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
BandKey = Annotated[str, StringConstraints(pattern=r"^(0|-?[1-9][0-9]{0,5})$")]
SessionKey = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}$")]
Total = Annotated[float, Field(allow_inf_nan=False)]


def band_of(first_score: Decimal, band_width: Decimal) -> int:
    """``floor(first score / band width)``, exactly (in decimal, so 15.0 / 5 is band 3)."""
    return int((first_score / band_width).to_integral_value(rounding=ROUND_FLOOR))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SessionPercentiles(_Frozen):
    """The totals at one session of the episodes that started in one band."""

    n: int = Field(ge=1)
    p10: Total
    p25: Total
    p50: Total
    p75: Total
    p90: Total

    @model_validator(mode="after")
    def _ordered(self) -> SessionPercentiles:
        if not self.p10 <= self.p25 <= self.p50 <= self.p75 <= self.p90:
            raise ValueError("percentiles must be in order: p10 ≤ p25 ≤ p50 ≤ p75 ≤ p90")
        return self


class BandTrajectory(_Frozen):
    sessions: dict[SessionKey, SessionPercentiles]


class InstrumentTrajectories(_Frozen):
    band_width: float = Field(gt=0, allow_inf_nan=False)
    bands: dict[BandKey, BandTrajectory]

    def at(self, first_score: Decimal | float, session: int) -> SessionPercentiles | None:
        """The percentiles for an episode whose first score was ``first_score``, at
        ``session``; None where the model has no data for that band and session."""
        width = Decimal(str(self.band_width))
        band = self.bands.get(str(band_of(Decimal(str(first_score)), width)))
        return None if band is None else band.sessions.get(str(session))


class Skipped(_Frozen):
    """A band and session that had episodes, but fewer than the fit's minimum."""

    instrument: InstrumentId
    band: int
    session: int = Field(ge=1)
    n: int = Field(ge=1)


class InstrumentCounts(_Frozen):
    records: int = Field(ge=0)
    episodes: int = Field(ge=0)


class DataCounts(_Frozen):
    """What the model was fitted on, as counts only."""

    lines: int = Field(ge=0)
    records: int = Field(ge=0)
    bad_lines: int = Field(ge=0)
    records_fitted: int = Field(ge=0)
    episodes: int = Field(ge=0)
    instruments: dict[InstrumentId, InstrumentCounts]


class TrajectoryModel(_Frozen):
    version: Literal[1]
    fitted_at: AwareDatetime
    min_episodes: int = Field(ge=1)
    percentile_method: Literal["linear"]
    smoothing: Literal["none"]
    data: DataCounts
    instruments: dict[InstrumentId, InstrumentTrajectories]
    skipped: list[Skipped] = []


class ModelRefused(ValueError):
    """A model file that cannot be used; the message names every fault."""


def load_model(
    text: str | bytes, instruments: Mapping[str, Instrument] | None = None
) -> TrajectoryModel:
    """Parse and check a model file. With the deployment's ``instruments``, also refuse a model
    for an instrument it does not have, one with no clinical direction (alliance measures), or
    percentiles outside the instrument's total range."""
    try:
        model = TrajectoryModel.model_validate_json(text)
    except ValidationError as error:
        faults = [
            f"{'.'.join(str(p) for p in e['loc']) or '(the file)'}: {e['msg']}"
            for e in error.errors(include_url=False)
        ]
        raise ModelRefused(_message(faults)) from None
    if instruments is not None:
        faults = deployment_faults(model, instruments)
        if faults:
            raise ModelRefused(_message(faults))
    return model


def deployment_faults(model: TrajectoryModel, instruments: Mapping[str, Instrument]) -> list[str]:
    """Why the model does not fit the deployment's instruments (empty when it does)."""
    faults = []
    for instrument_id, fitted in model.instruments.items():
        instrument = instruments.get(instrument_id)
        if instrument is None:
            faults.append(f"instruments.{instrument_id}: not an instrument of this deployment")
            continue
        if instrument.kind == "alliance" or instrument.clinical is None:
            faults.append(
                f"instruments.{instrument_id}: has no clinical direction (not an outcome measure)"
            )
            continue
        low, high = float(instrument.total_min), float(instrument.total_max)
        for band, trajectory in fitted.bands.items():
            for session, p in trajectory.sessions.items():
                if not (low <= p.p10 and p.p90 <= high):
                    faults.append(
                        f"instruments.{instrument_id}.bands.{band}.sessions.{session}: "
                        f"percentiles outside the total range {low:g}–{high:g}"
                    )
    return faults


def _message(faults: list[str]) -> str:
    shown = faults[:20]
    more = f"\n  … and {len(faults) - len(shown)} more" if len(faults) > len(shown) else ""
    return "trajectory model refused:\n  " + "\n  ".join(shown) + more


def write_model(model: TrajectoryModel, path: Path) -> None:
    """Write a model file whole: beside it, then renamed over it, so a reader (analytics
    re-reading ``RAPPORT_TRAJECTORIES_FILE``) never sees half a model."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(model.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
