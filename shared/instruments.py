"""Instrument definitions as data: the schema every questionnaire definition must satisfy.

Definitions are versioned JSON files (``instrument_definitions/`` here, plus any folder a site
adds). Feedback scores with them; analytics takes concern conditions and reliable-change
thresholds from them. Item wording is shipped only for instruments that are free to use.

Two kinds stand apart from alliance and outcome: ``goals`` (the client's own goals, rated each
session) and ``support`` (how supportive the people around the client are of the therapy). The
rules read them with rules of their own (docs/clinical-rules.md): neither counts as alliance nor
as an outcome with a direction, and neither has a clinical cutoff.

Open items (``open_items``): an instrument whose items are not fixed in the definition but are
the episode's own ids, e.g. goal ratings, whose items are the episode's goal ids (the set may
change between sessions). Its ``items`` list is empty; an answer names one or more ids that
match ``open_items.id_pattern`` (at most ``open_items.max_items``), each a number in range and on
step; which ids the episode has is checked where the episode is known (feedback). Its total is
the mean of the answers given (rounded half-even to two decimals): a figure on the item scale
whatever the number of goals; the rules read each item against its own first rating.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["client", "partner", "family", "therapist"]
MEAN_PLACES = Decimal("0.01")  # an open-items total (a mean) is kept to two decimals


class Concern(BaseModel):
    """An alliance instrument's concern condition (e.g. SRS: total < 36 or any item < 9)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    total_below: Decimal | None = None
    any_item_below: Decimal | None = None


class Clinical(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    direction: Literal["higher_is_worse", "lower_is_worse"]
    cutoff: Decimal
    cutoffs_by_age_group: dict[str, Decimal] = {}

    def cutoff_for(self, age_group: str | None) -> Decimal:
        """The clinical cutoff for a client of ``age_group`` (e.g. ORS: adult 25, adolescent
        28, child 32): the general ``cutoff`` when the age group is unknown (None) or the
        definition has no cutoff of its own for it."""
        if age_group is None:
            return self.cutoff
        return self.cutoffs_by_age_group.get(age_group, self.cutoff)


class OpenItems(BaseModel):
    """Items that are the episode's own ids (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["episode_goals"]
    id_pattern: str = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
    max_items: int = Field(default=5, ge=1)


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str
    min: Decimal
    max: Decimal


class Instrument(BaseModel):
    """A versioned instrument definition, loaded from ``instruments/*.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
    version: int = Field(ge=1)
    title: str
    kind: Literal["alliance", "outcome", "symptom", "goals", "support"]
    respondents: list[Role]
    items: list[str] = []
    open_items: OpenItems | None = None
    item_min: Decimal
    item_max: Decimal
    step: Decimal = Field(gt=0)
    total_min: Decimal
    total_max: Decimal
    subscales: dict[str, list[str]] = {}
    reversed: list[str] = []
    concern: Concern | None = None
    clinical: Clinical | None = None
    reliable_change: Decimal = Field(gt=0)
    risk_items: list[str] = []
    bands: list[Band] = []
    free_to_use: bool = False
    preamble: str | None = None
    wording: dict[str, str] = {}
    loinc: dict[str, object] = {}
    answers: list[dict[str, object]] = []
    source: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        known = set(self.items)
        if (self.open_items is None) == (not self.items):
            raise ValueError("an instrument has either fixed items or open_items, not both")
        if len(known) != len(self.items):
            raise ValueError("item ids must be unique")
        for name, members in self.subscales.items():
            if not set(members) <= known:
                raise ValueError(f"subscale {name} names unknown items")
        for group, label in ((self.reversed, "reversed"), (self.risk_items, "risk_items")):
            if not set(group) <= known:
                raise ValueError(f"{label} names unknown items")
        if self.item_min >= self.item_max:
            raise ValueError("item_min must be below item_max")
        if self.kind == "alliance" and self.concern is None:
            raise ValueError("an alliance instrument needs a concern condition")
        if self.wording and not self.free_to_use:
            raise ValueError("wording may only be shipped for instruments free to use")
        return self

    @property
    def higher_is_better(self) -> bool:
        """Alliance instruments and ORS: a higher total is better; PHQ-9, GAD-7, CORE-10: worse."""
        return self.clinical is None or self.clinical.direction == "lower_is_worse"

    def counted(self, item: str, value: Decimal | int) -> Decimal:
        """What an answer adds to the total: a reversed item counts as item_min + item_max − v."""
        if item in self.reversed:
            return self.item_min + self.item_max - value
        return value if isinstance(value, Decimal) else Decimal(value)

    def total(self, items: Mapping[str, Decimal | int]) -> Decimal:
        """The instrument's total: the sum of its items as :meth:`counted`. The one scoring rule
        every service and the replay use. Assumes answers that passed the instrument's checks
        (every item present, in range, on step). Open items: the mean of the answers given."""
        if self.open_items is not None:
            given = [self.counted(item, value) for item, value in items.items()]
            return (sum(given, Decimal(0)) / len(given)).quantize(MEAN_PLACES, ROUND_HALF_EVEN)
        total = Decimal(0)
        for item in self.items:
            total += self.counted(item, items[item])
        return total

    @property
    def decimals(self) -> int:
        exponent = self.step.normalize().as_tuple().exponent
        return max(0, -int(exponent))


def load_instruments(*folders: Path) -> dict[str, Instrument]:
    """Shipped definitions, then any site additions; a later folder may add, never silently
    replace, an id at the same version."""
    found: dict[str, Instrument] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            instrument = Instrument.model_validate_json(path.read_text())
            existing = found.get(instrument.id)
            if existing is not None and existing.version >= instrument.version:
                raise ValueError(
                    f"{path}: instrument {instrument.id} v{instrument.version} "
                    f"already defined at v{existing.version}"
                )
            found[instrument.id] = instrument
    return found


SHIPPED = Path(__file__).parent / "instrument_definitions"


def deployment_instruments(extra_folder: str | None) -> dict[str, Instrument]:
    """The shipped instruments plus a site's own folder (``RAPPORT_INSTRUMENTS_DIR``)."""
    folders = [SHIPPED] + ([Path(extra_folder)] if extra_folder else [])
    return load_instruments(*folders)
