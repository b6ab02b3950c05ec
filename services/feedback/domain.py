"""Questionnaire scoring: instruments as data, answers checked and scored. Pure: no I/O.

Scores keep the instrument's precision exactly (``Decimal``), so a threshold is compared on the
value the client gave, with no floating-point slop (see docs/clinical-rules.md, Instruments).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from shared.consent import may_invite
from shared.instruments import Instrument


@dataclass(frozen=True)
class AnswerError:
    """One thing wrong with an answer set: which item, which rule, in words."""

    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class Scored:
    items: dict[str, Decimal]
    total: Decimal
    subscales: dict[str, Decimal]
    band: str | None
    in_concern_or_clinical_range: bool
    risk_items: dict[str, Decimal]


def check_answers(
    instrument: Instrument,
    role: str,
    raw: dict[str, object],
    episode_items: Collection[str] | None = None,
) -> list[AnswerError]:
    """Every reason the answers cannot be scored; empty when they can.

    For an instrument with open items (goal ratings) ``episode_items`` are the ids the episode
    has now (its active goals): an answer names one or more of them; None checks only the ids'
    form (the replay, which knows no episode beyond its records)."""
    errors: list[AnswerError] = []
    if role not in instrument.respondents:
        errors.append(
            AnswerError(
                "respondent_role",
                "role_not_allowed",
                f"{instrument.id} may be answered by "
                f"{', '.join(instrument.respondents)}, not {role}",
            )
        )
    if instrument.open_items is None:
        errors.extend(_fixed_items(instrument, raw))
        answered = [item for item in instrument.items if item in raw]
    else:
        errors.extend(_open_items(instrument, raw, episode_items))
        answered = list(raw)
    for item in answered:
        value = _decimal(raw[item])
        if value is None:
            errors.append(
                AnswerError(f"items.{item}", "not_a_number", f"item {item} must be a number")
            )
        elif not instrument.item_min <= value <= instrument.item_max:
            errors.append(
                AnswerError(
                    f"items.{item}",
                    "out_of_range",
                    f"item {item} must be from {instrument.item_min} to "
                    f"{instrument.item_max}, got {value}",
                )
            )
        elif (value - instrument.item_min) % instrument.step != 0:
            errors.append(
                AnswerError(
                    f"items.{item}",
                    "off_step",
                    f"item {item} must be in steps of {instrument.step}, got {value}",
                )
            )
    return errors


def _fixed_items(instrument: Instrument, raw: dict[str, object]) -> list[AnswerError]:
    """Every item of the definition present, none other."""
    errors = [
        AnswerError(f"items.{item}", "missing", f"item {item} is required")
        for item in instrument.items
        if item not in raw
    ]
    errors.extend(
        AnswerError(f"items.{item}", "unknown_item", f"{instrument.id} has no item {item!r}")
        for item in raw
        if item not in instrument.items
    )
    return errors


def _open_items(
    instrument: Instrument, raw: dict[str, object], episode_items: Collection[str] | None
) -> list[AnswerError]:
    """Open items (goal ratings): at least one, at most ``max_items``, each an id of the form
    the definition allows and, when the episode's ids are known, one the episode has."""
    spec = instrument.open_items
    assert spec is not None
    if not raw:
        return [AnswerError("items", "missing", f"{instrument.id} needs at least one rating")]
    errors: list[AnswerError] = []
    if len(raw) > spec.max_items:
        errors.append(
            AnswerError(
                "items",
                "too_many_items",
                f"{instrument.id} takes at most {spec.max_items} ratings, got {len(raw)}",
            )
        )
    for item in raw:
        if not re.fullmatch(spec.id_pattern, item):
            errors.append(
                AnswerError(f"items.{item}", "unknown_item", f"{item!r} is not a goal id")
            )
        elif episode_items is not None and item not in episode_items:
            errors.append(
                AnswerError(
                    f"items.{item}",
                    "unknown_goal",
                    f"the episode has no active goal {item!r}",
                )
            )
    return errors


def score(instrument: Instrument, raw: dict[str, object], age_group: str | None = None) -> Scored:
    """Score answers that passed :func:`check_answers`, for a client of ``age_group`` (the
    clinical range is the client's own: ``Clinical.cutoff_for``; None: the general cutoff)."""
    values = {item: _decimal(raw[item]) for item in (instrument.items or raw)}
    items: dict[str, Decimal] = {k: v for k, v in values.items() if v is not None}
    total = instrument.total(items)
    subscales = {
        name: sum((instrument.counted(i, items[i]) for i in members), Decimal(0))
        for name, members in instrument.subscales.items()
    }
    band = next((b.code for b in instrument.bands if b.min <= total <= b.max), None)
    risk = {i: items[i] for i in instrument.risk_items if items[i] > 0}
    return Scored(
        items=items,
        total=total,
        subscales=subscales,
        band=band,
        in_concern_or_clinical_range=in_concern_or_clinical_range(
            instrument, total, items, age_group
        ),
        risk_items=risk,
    )


def in_concern_or_clinical_range(
    instrument: Instrument,
    total: Decimal,
    items: dict[str, Decimal],
    age_group: str | None = None,
) -> bool:
    """An alliance instrument's concern condition, or an outcome instrument's clinical range
    with the cutoff of the client's age group (e.g. ORS: adolescent below 28, adult below 25)."""
    if instrument.concern is not None:
        concern = instrument.concern
        if concern.total_below is not None and total < concern.total_below:
            return True
        return concern.any_item_below is not None and any(
            v < concern.any_item_below for v in items.values()
        )
    if instrument.clinical is not None:
        cutoff = instrument.clinical.cutoff_for(age_group)
        if instrument.clinical.direction == "higher_is_worse":
            return total >= cutoff
        return total < cutoff
    return False


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


@dataclass(frozen=True)
class Change:
    """How a score compares with the respondent's first score on the instrument in the episode
    (Jacobson & Truax 1991: reliable change, and clinically significant change when the score
    also crosses the clinical cutoff in the good direction)."""

    first_total: Decimal
    change_from_first: Decimal  # positive = better, whatever the instrument's direction
    reliable_change: str  # improved | deteriorated | no_reliable_change
    clinically_significant: bool


def change_from_first(
    instrument: Instrument, first_total: Decimal, total: Decimal, age_group: str | None = None
) -> Change:
    """The change from the first score; clinically significant when it also leaves the
    clinical range of the client's age group."""
    better = total - first_total if instrument.higher_is_better else first_total - total
    if better >= instrument.reliable_change:
        reliable = "improved"
    elif -better >= instrument.reliable_change:
        reliable = "deteriorated"
    else:
        reliable = "no_reliable_change"
    significant = False
    if reliable == "improved" and instrument.clinical is not None:
        first_clinical = in_concern_or_clinical_range(instrument, first_total, {}, age_group)
        now_clinical = in_concern_or_clinical_range(instrument, total, {}, age_group)
        significant = first_clinical and not now_clinical
    return Change(first_total, better, reliable, significant)


# -- consent and the limits of confidentiality (issue 19) ---------------------------------------


@dataclass(frozen=True)
class ConsentRecord:
    scope: str
    granted: bool
    recorded_at: datetime  # the latest per scope holds


@dataclass(frozen=True)
class Notice:
    """What the one-time link page shows before a client answers: the site's text and what
    happens when a risk item is answered (who is told, how soon). Version 0: the deployment's
    default, until the site writes its own."""

    version: int
    text: str
    risk_contacts: tuple[str, ...]
    risk_within_minutes: int


DEFAULT_NOTICE = Notice(
    version=0,
    text=(
        "Your answers are confidential within your care team: your therapist reads them to "
        "make the sessions work better for you. There are limits: if you tell us you may be at "
        "risk of harm, we must act on it."
    ),
    risk_contacts=("therapist", "clinical_lead"),
    risk_within_minutes=15,
)


def consents_now(records: list[ConsentRecord]) -> dict[str, bool]:
    """What holds now for each scope with a record (the latest one); a scope never recorded is
    absent (nothing agreed, nothing withdrawn)."""
    latest: dict[str, ConsentRecord] = {}
    for record in records:
        held = latest.get(record.scope)
        if held is None or record.recorded_at >= held.recorded_at:
            latest[record.scope] = record
    return {scope: r.granted for scope, r in latest.items()}


def link_refusal(role: str, consents: dict[str, bool]) -> str | None:
    """Why a one-time link may no longer be answered, or None: the client withdrew consent to
    feedback invitations (every link of their episodes), or to contact with significant
    others (the links of their partners and family members)."""
    return None if may_invite(role, consents) else "consent_withdrawn"


def needs_notice(instruments: Collection[Instrument]) -> bool:
    """A response with a risk item is given only after the confidentiality notice was shown."""
    return any(i.risk_items for i in instruments)
