"""Each rule's condition on plain numbers, compared exactly against an instrument's thresholds
(:class:`InstrumentThresholds`: the instrument's definition with the site's overrides)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from services.analytics.rules_config import DropoutWeights, InstrumentThresholds


def in_concern(
    th: InstrumentThresholds, total: Decimal, items: Mapping[str, Decimal | int]
) -> bool:
    """The instrument's concern condition (docs/clinical-rules.md, "Concern"; SRS: total < 36
    or any item < 9, Duncan et al. 2003; WAI-SR: total < 36, the 'weak' band).

    Not the kernel's: ``shared.instruments`` holds no concern rule (only the scoring and the
    direction, which :func:`resolve_thresholds` takes from it). This one reads the thresholds
    after the site's overrides (``RuleConfig.instruments``), resolved once per instrument for
    the hot path, so a site's concern line can differ from the definition's. Feedback's
    ``in_concern_or_clinical_range`` applies the definition's own numbers to the flag it
    publishes; analytics uses that flag only for instruments without a concern condition."""
    if th.concern_total_below is not None and total < th.concern_total_below:
        return True
    below = th.concern_any_item_below
    if below is not None:
        for value in items.values():
            if value < below:
                return True
    return False


def worse_by(th: InstrumentThresholds, first: Decimal, score: Decimal) -> Decimal:
    """How much worse ``score`` is than ``first`` in the instrument's direction (negative when
    better): ORS lower is worse; PHQ-9 and GAD-7 higher is worse."""
    return first - score if th.lower_is_worse else score - first


def in_clinical_range(th: InstrumentThresholds, score: Decimal) -> bool:
    """Rule 9's clinical range: ORS < 25; PHQ-9 ≥ 10; GAD-7 ≥ 8 (cutoffs from the definitions)."""
    assert th.clinical_cutoff is not None
    return score < th.clinical_cutoff if th.lower_is_worse else score >= th.clinical_cutoff


def rescaled_gap_holds(
    therapist: Decimal,
    therapist_th: InstrumentThresholds,
    client: Decimal,
    client_th: InstrumentThresholds,
) -> bool:
    """Rule 7 across instruments, exactly: on the 0–100 scale ((score − min) / (max − min) ×
    100) the therapist is above the client by at least the larger of the two RCs on that scale.
    Multiplied through by both ranges, so no division rounds at the threshold."""
    t_span = therapist_th.total_max - therapist_th.total_min
    c_span = client_th.total_max - client_th.total_min
    gap = (therapist - therapist_th.total_min) * c_span - (client - client_th.total_min) * t_span
    return gap >= max(therapist_th.reliable_change * c_span, client_th.reliable_change * t_span)


def dropout_score(
    weights: DropoutWeights,
    early_low_alliance: bool,
    open_ruptures: int,
    unresolved_ruptures: int,
    missed_feedback: int,
    missed_sessions: int,
    intervals_without_contact: int = 0,
) -> Decimal:
    """Rule 10's transparent score: the weighted sum of its risk factors
    (``intervals_without_contact``: expected session intervals since the last contact beyond
    the first)."""
    return (
        weights.early_low_alliance * (1 if early_low_alliance else 0)
        + weights.open_rupture * open_ruptures
        + weights.unresolved_rupture * unresolved_ruptures
        + weights.missed_feedback * missed_feedback
        + weights.missed_session * missed_sessions
        + weights.interval_without_contact * intervals_without_contact
    )
