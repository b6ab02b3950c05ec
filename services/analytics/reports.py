"""What a supervisor or clinic manager reads: an episode's chart (built from its timeline) and
a site's report page. Pure: the use cases (``services.analytics.usecases``) fetch, these draw.

Named as staff know them: the chart's title is the site, therapist and sessions (never the
episode's id), alert kinds have their plain names, every empty section says so, and a
therapist estimate below the minimum number of cases reads "not enough data (n of 15 cases)".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Protocol

from services.analytics.charts import EpisodeChart, Panel, Series
from services.analytics.domain import InstrumentTrajectory, Trajectories, by_urgency, plain_name
from services.analytics.domain.trajectories import track_position
from services.analytics.effectiveness import not_enough_data, rate_with_interval
from services.analytics.episode_course import (
    Alert,
    PhaseChange,
    Session,
    alert_marks,
    phase_marks,
    session_marks,
    session_times,
)
from shared.instruments import Instrument

Points = list[tuple[int, float]]


# What these pages read of the routes' answers (``services.analytics.mapping``), by shape.


class Score(Protocol):
    @property
    def session_number(self) -> int: ...
    @property
    def respondent(self) -> str: ...
    @property
    def respondent_role(self) -> str: ...
    @property
    def instrument(self) -> str: ...
    @property
    def score(self) -> float: ...


class GoalPoint(Protocol):
    """One rating of one of the client's goals (``mapping.GoalProgressOut``)."""

    @property
    def session_number(self) -> int: ...
    @property
    def goal_order(self) -> int: ...
    @property
    def rating(self) -> float: ...


class Timeline(Protocol):
    @property
    def site_id(self) -> str: ...
    @property
    def therapist_id(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def scores(self) -> Sequence[Score]: ...
    @property
    def alerts(self) -> Sequence[Alert]: ...
    @property
    def sessions(self) -> Sequence[Session]: ...
    @property
    def phases(self) -> Sequence[PhaseChange]: ...


class Rate(Protocol):
    @property
    def estimate(self) -> float: ...
    @property
    def lower(self) -> float: ...
    @property
    def upper(self) -> float: ...


class TherapistEstimate(Protocol):
    @property
    def therapist_id(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def min_cases(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def reliable_improvement_rate(self) -> Rate | None: ...
    @property
    def classification(self) -> str: ...


class SiteSummary(Protocol):
    @property
    def site_id(self) -> str: ...
    @property
    def episodes_active(self) -> int: ...
    @property
    def episodes_closed(self) -> int: ...
    @property
    def sessions_with_feedback(self) -> int: ...
    @property
    def alerts_opened(self) -> Mapping[str, int]: ...
    @property
    def alerts_per_100_sessions(self) -> float: ...
    @property
    def ruptures(self) -> int: ...
    @property
    def ruptures_repaired(self) -> int: ...
    @property
    def median_sessions_to_repair(self) -> float | None: ...
    @property
    def reliable_improvement_rate(self) -> float | None: ...
    @property
    def therapists(self) -> Sequence[TherapistEstimate]: ...


def sessions_words(sessions: Sequence[int]) -> str:
    if not sessions:
        return "no sessions yet"
    first, last = min(sessions), max(sessions)
    return f"session {first}" if first == last else f"sessions {first}–{last}"


def chart_title(timeline: Timeline) -> str:
    """What staff know an episode by: its site, therapist and sessions (scored or reported)."""
    sessions = [s.session_number for s in timeline.scores]
    sessions += [s.session_number for s in timeline.sessions]
    return (
        f"Site {timeline.site_id} · therapist {timeline.therapist_id} · {sessions_words(sessions)}"
    )


def _model_bands(
    trajectory: InstrumentTrajectory | None, points: Points, last: int
) -> tuple[list[tuple[int, float, float]], list[tuple[int, float, float]]]:
    """The model's 25–75 and 10–90 percentile bands for the client who scored ``points``
    (banded on their first score), at every session from their first to ``last`` where the
    model has data."""
    if trajectory is None or not points:
        return [], []
    first_session, first_score = min(points)
    middle, wide = [], []
    for session in range(first_session, last + 1):
        p = trajectory.at(first_score, session)
        if p is not None:
            middle.append((session, float(p.p25), float(p.p75)))
            wide.append((session, float(p.p10), float(p.p90)))
    return middle, wide


# Panel order: alliance instruments first, then outcome ones, shipped ones in this order.
ORDER = ("srs", "wai-sr", "wai-sr-t", "ors", "phq-9", "gad-7", "core-10")


def _panel_order(instrument: Instrument) -> tuple[int, int, str]:
    known = ORDER.index(instrument.id) if instrument.id in ORDER else len(ORDER)
    return (0 if instrument.kind == "alliance" else 1, known, instrument.id)


def _instrument_panel(
    instrument: Instrument,
    series: dict[str, Points],
    client: Points,
    last: int,
    trajectory: InstrumentTrajectory | None,
    marks: dict[str, list[tuple[int, float]]],
    age_group: str | None = None,
) -> Panel:
    """One instrument on its own range (WAI-SR 12–60, SRS 0–40, PHQ-9 0–27 …); an outcome's
    clinical cutoff is the one for the client's ``age_group`` (ORS: 28 for an adolescent)."""
    name = instrument.id.upper()
    low, high = float(instrument.total_min), float(instrument.total_max)
    lines = [Series(k, v) for k, v in series.items()]
    if instrument.kind == "alliance":
        concern = instrument.concern.total_below if instrument.concern else None
        return Panel(
            f"Alliance ({name})",
            low,
            high,
            lines,
            reference=None if concern is None else float(concern),
            reference_label="" if concern is None else f"concern (below {float(concern):g})",
            ruptures=marks.get("rupture", []),
            repairs=marks.get("repair", []),
        )
    if instrument.kind in ("goals", "support"):
        what = "Goals, each 0–10" if instrument.kind == "goals" else "Support of others, 0–10"
        return Panel(f"{what} ({name})", low, high, lines)
    cutoff = instrument.clinical.cutoff_for(age_group) if instrument.clinical else None
    middle, wide = _model_bands(trajectory, client, last)
    return Panel(
        f"Outcome ({name})",
        low,
        high,
        lines,
        reference=None if cutoff is None else float(cutoff),
        reference_label="" if cutoff is None else f"clinical cutoff ({float(cutoff):g})",
        band=middle,
        band_label="expected, 25th–75th percentile",
        outer_band=wide,
        outer_band_label="expected, 10th–90th percentile",
    )


def episode_chart(
    timeline: Timeline,
    instruments: Mapping[str, Instrument],
    trajectories: Trajectories | None = None,
    age_group: str | None = None,
    goals: Sequence[GoalPoint] = (),
) -> EpisodeChart:
    """Every instrument the episode has, each in its own panel on its own range, with its
    concern line or clinical cutoff (for the client's ``age_group``) and, for outcome
    instruments where the model has the client's band, the model's expected bands; then the
    alerts lane. An episode without any alliance (or outcome) score has an SRS (or ORS) panel
    that says "no data yet". Given the client's ``goals`` (each goal's ratings), the goal
    ratings panel shows each goal's line ("goal 1" the first rated) instead of their mean."""
    by_instrument: dict[str, dict[str, Points]] = {}
    client: dict[str, Points] = {}
    for rated in goals:
        lines = by_instrument.setdefault("goals", {})
        lines.setdefault(f"goal {rated.goal_order}", []).append(
            (rated.session_number, rated.rating)
        )
    for score in timeline.scores:
        instrument = instruments.get(score.instrument)
        if instrument is None or (instrument.id == "goals" and goals):
            continue
        if instrument.kind != "alliance" and score.respondent_role == "therapist":
            continue
        label = f"{score.respondent_role} ({instrument.id.upper()})"
        point = (score.session_number, score.score)
        by_instrument.setdefault(instrument.id, {}).setdefault(label, []).append(point)
        if score.respondent_role == "client":
            client.setdefault(instrument.id, []).append(point)
    last = max((s.session_number for s in timeline.scores), default=1)
    points = {(s.session_number, s.respondent, s.instrument): s.score for s in timeline.scores}
    marks: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for a in timeline.alerts:
        if a.kind in ("rupture", "repair") and a.instrument is not None:
            at = points.get((a.opened_session, a.respondent or "", a.instrument), 0.0)
            marks.setdefault(a.instrument, {}).setdefault(a.kind, []).append((a.opened_session, at))
    shown = [instruments[i] for i in by_instrument]
    for alliance, placeholder in ((True, "srs"), (False, "ors")):  # a panel saying no data yet
        if placeholder in instruments and not any(
            (i.kind == "alliance") == alliance for i in shown
        ):
            shown.append(instruments[placeholder])
    shown.sort(key=_panel_order)
    panels = [
        _instrument_panel(
            instrument,
            by_instrument.get(instrument.id, {}),
            client.get(instrument.id, []),
            last,
            None if trajectories is None else trajectories.get(instrument.id),
            marks.get(instrument.id, {}),
            age_group,
        )
        for instrument in shown
    ]
    times = session_times(timeline.sessions)
    return EpisodeChart(
        chart_title(timeline),
        panels,
        alert_marks(timeline.alerts, times),
        subtitle=f"Every measure by session, the sessions and phases, and the alerts raised "
        f"and followed up (episode {timeline.phase.replace('_', ' ')})",
        sessions=session_marks(timeline.sessions),
        phases=phase_marks(timeline.phases, times),
    )


@dataclass(frozen=True)
class TrackShares:
    """How many of a site's episodes are below, on and above track (the latest client score
    against the model's 25–75 band), and how many the model cannot place."""

    below: int = 0
    on: int = 0
    above: int = 0
    not_compared: int = 0

    @property
    def compared(self) -> int:
        return self.below + self.on + self.above


def track_shares(
    scores: Iterable[tuple[str, str, int, Decimal]],
    trajectories: Trajectories | None,
    instruments: Mapping[str, Instrument],
) -> TrackShares:
    """From client scores ``(episode, instrument, session, total)`` on outcome instruments:
    each episode is placed on its first instrument in panel order that the model has (ORS
    before PHQ-9 …), by its latest score against the model's percentiles for its starting band
    at that session. An episode whose band or latest session the model lacks is not compared.
    """
    series: dict[str, dict[str, list[tuple[int, Decimal]]]] = {}
    for episode, instrument, session, total in scores:
        series.setdefault(episode, {}).setdefault(instrument, []).append((session, total))
    counts = {"below": 0, "on": 0, "above": 0, "not_compared": 0}
    for by_instrument in series.values():
        position = "not_compared"
        modelled = [
            instruments[i]
            for i in by_instrument
            if i in instruments and trajectories is not None and i in trajectories
        ]
        for chosen in sorted(modelled, key=_panel_order)[:1]:
            assert trajectories is not None
            points = by_instrument[chosen.id]
            first, latest = min(points, key=_session), max(points, key=_session)
            p = trajectories[chosen.id].at(first[1], latest[0])
            if p is not None and len(points) > 1:
                position = track_position(latest[1], p, chosen.higher_is_better)
        counts[position] += 1
    return TrackShares(**counts)


def _session(point: tuple[int, Decimal]) -> int:
    return point[0]


def track_html(shares: TrackShares) -> str:
    if not shares.compared:
        return (
            '<p class="none">No episode can be compared with expected trajectories yet (no '
            f"model, or none for these clients' starting bands and sessions; "
            f"{shares.not_compared} episodes with outcome scores).</p>"
        )
    rows = "".join(
        f"<tr><td>{label}</td><td>{n}</td><td>{n / shares.compared:.0%}</td></tr>"
        for label, n in (
            ("below track (worse than the middle half)", shares.below),
            ("on track (within the middle half)", shares.on),
            ("above track (better than the middle half)", shares.above),
        )
    )
    return (
        "<p>Each episode's latest client score against the expected trajectories of clients who "
        "started in the same place (25th–75th percentile).</p>"
        f"<table><tr><th>episodes</th><th>n</th><th>share</th></tr>{rows}</table>"
        f'<p class="none">{shares.not_compared} episodes not compared (no model data for '
        "their starting band or latest session, or one score only).</p>"
    )


def effectiveness_words(t: TherapistEstimate) -> str:
    """A therapist's rate of reliable improvement as the site report prints it."""
    if t.status == "not_enough_data":
        return not_enough_data(t.n, t.min_cases)
    rate = t.reliable_improvement_rate
    if rate is None:
        return "—"
    return rate_with_interval(rate.estimate, rate.lower, rate.upper)


def site_report_html(
    summary: SiteSummary, charts: list[str], track: TrackShares | None = None
) -> str:
    rows = "".join(
        f"<tr><td>{escape(plain_name(k))}</td><td>{summary.alerts_opened[k]}</td></tr>"
        for k in by_urgency(summary.alerts_opened)
    )
    alerts = (
        f"<table><tr><th>alert</th><th>opened</th></tr>{rows}</table>"
        if rows
        else '<p class="none">No alerts have been raised at this site yet.</p>'
    )
    therapists = "".join(
        f"<tr><td>{escape(t.therapist_id)}</td><td>{escape(t.domain)}</td><td>{t.n}</td>"
        f"<td>{escape(effectiveness_words(t))}</td>"
        f"<td>{escape(t.classification.replace('_', ' '))}</td></tr>"
        for t in summary.therapists
    )
    minimum = summary.therapists[0].min_cases if summary.therapists else 15
    effectiveness = (
        "<table><tr><th>therapist</th><th>domain</th><th>closed cases</th>"
        f"<th>reliable improvement</th><th>class</th></tr>{therapists}</table>"
        if therapists
        else '<p class="none">No closed episodes yet: nothing to estimate.</p>'
    )

    def value(v: float | None, percent: bool = False) -> str:
        if v is None:
            return "—"
        return f"{v:.0%}" if percent else f"{v:g}"

    improvement = value(summary.reliable_improvement_rate, percent=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rapport — {escape(summary.site_id)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#24292f}} table{{border-collapse:collapse;
margin:1em 0}} td,th{{border:1px solid #d0d7de;padding:4px 10px;text-align:left}}
.cards{{display:flex;gap:1em;flex-wrap:wrap}} .card{{border:1px solid #d0d7de;border-radius:6px;
padding:10px 16px}} .card b{{font-size:1.6em;display:block}} .none{{color:#57606a}}</style></head>
<body><h1>Site report: {escape(summary.site_id)}</h1>
<div class="cards">
<div class="card"><b>{summary.episodes_active}</b>active episodes</div>
<div class="card"><b>{summary.episodes_closed}</b>closed episodes</div>
<div class="card"><b>{summary.sessions_with_feedback}</b>sessions with feedback</div>
<div class="card"><b>{summary.alerts_per_100_sessions:g}</b>alerts per 100 sessions</div>
<div class="card"><b>{summary.ruptures_repaired}/{summary.ruptures}</b>ruptures repaired</div>
<div class="card"><b>{value(summary.median_sessions_to_repair)}</b>median sessions to repair</div>
<div class="card"><b>{improvement}</b>reliable improvement</div>
</div>
<h2>Alerts by kind</h2>{alerts}
<h2>Episodes on track</h2>{track_html(track or TrackShares())}
<h2>Therapist effectiveness</h2>
<p>Rate of reliable improvement, shrunk toward the site mean, with its 95% interval. A therapist
is estimated and classed only with at least {minimum} closed cases in a domain.</p>
{effectiveness}
<h2>Episodes with the most alliance alerts</h2>
{"".join(f"<figure>{c}</figure>" for c in charts) or '<p class="none">No alliance alerts yet.</p>'}
</body></html>"""
