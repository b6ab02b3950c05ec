"""What a supervisor or clinic manager reads: an episode's chart (built from its timeline) and
a site's report page. Pure: the use cases (``services.analytics.usecases``) fetch, these draw.

Named as staff know them: the chart's title is the site, therapist and sessions (never the
episode's id), alert kinds have their plain names, every empty section says so, and a
therapist estimate below the minimum number of cases reads "not enough data (n of 15 cases)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Protocol

from services.analytics.charts import AlertMark, EpisodeChart, Panel, Series
from services.analytics.domain import by_urgency, plain_name
from services.analytics.effectiveness import not_enough_data, rate_with_interval
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


class Alert(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def respondent(self) -> str | None: ...
    @property
    def instrument(self) -> str | None: ...
    @property
    def opened_session(self) -> int: ...
    @property
    def resolved_session(self) -> int | None: ...


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
    """What staff know an episode by: its site, therapist and sessions."""
    sessions = [s.session_number for s in timeline.scores]
    return (
        f"Site {timeline.site_id} · therapist {timeline.therapist_id} · {sessions_words(sessions)}"
    )


def _alert_marks(timeline: Timeline) -> list[AlertMark]:
    marks = []
    for alert in sorted(timeline.alerts, key=lambda a: (a.opened_session, a.kind)):
        if alert.status == "open":
            detail = "still open"
        elif alert.resolved_session is not None and alert.kind not in {"risk", "repair"}:
            detail = f"resolved at session {alert.resolved_session}"
        else:
            detail = ""
        marks.append(
            AlertMark(
                alert.opened_session,
                alert.kind,
                plain_name(alert.kind),
                detail,
                urgent=alert.severity == "urgent",
            )
        )
    return marks


def _expected_band(client_ors: Points, top: float) -> list[tuple[int, float, float]]:
    """Improving by about one point a session from the first score (the site's own
    expected-treatment-response band replaces this once it has enough data)."""
    if not client_ors:
        return []
    first_session, first_score = client_ors[0]
    last = max(s for s, _ in client_ors)
    return [
        (
            s,
            min(top, first_score + 0.5 * (s - first_session)),
            min(top, first_score + 1.8 * (s - first_session)),
        )
        for s in range(first_session, last + 1)
    ]


def episode_chart(timeline: Timeline, instruments: Mapping[str, Instrument]) -> EpisodeChart:
    alliance: dict[str, Points] = {}
    outcome: dict[str, Points] = {}
    concern: float | None = None
    cutoff: float | None = None
    outcome_range = (0.0, 40.0)
    client_ors: Points = []
    for score in timeline.scores:
        instrument = instruments.get(score.instrument)
        if instrument is None:
            continue
        label = f"{score.respondent_role} ({instrument.id.upper()})"
        point = (score.session_number, score.score)
        if instrument.kind == "alliance":
            alliance.setdefault(label, []).append(point)
            if instrument.concern and instrument.concern.total_below is not None:
                concern = float(instrument.concern.total_below)
        elif score.respondent_role != "therapist" and instrument.id == "ors":
            outcome.setdefault(label, []).append(point)
            if score.respondent_role == "client":
                client_ors.append(point)
            if instrument.clinical is not None:
                cutoff = float(instrument.clinical.cutoff)
            outcome_range = (float(instrument.total_min), float(instrument.total_max))
    points = {(s.session_number, s.respondent, s.instrument): s.score for s in timeline.scores}

    def marks(kind: str) -> list[tuple[int, float]]:
        return [
            (
                a.opened_session,
                points.get((a.opened_session, a.respondent or "", a.instrument or ""), 0.0),
            )
            for a in timeline.alerts
            if a.kind == kind
        ]

    panels = [
        Panel(
            "Alliance",
            0,
            40 if concern is None or concern <= 40 else 60,
            [Series(k, v) for k, v in alliance.items()],
            reference=concern,
            reference_label=f"concern (below {concern:g})" if concern is not None else "",
            ruptures=marks("rupture"),
            repairs=marks("repair"),
        ),
        Panel(
            "Outcome (ORS)",
            outcome_range[0],
            outcome_range[1],
            [Series(k, v) for k, v in outcome.items()],
            reference=cutoff,
            reference_label=f"clinical cutoff ({cutoff:g})" if cutoff is not None else "",
            band=_expected_band(client_ors, outcome_range[1]),
        ),
    ]
    return EpisodeChart(
        chart_title(timeline),
        panels,
        _alert_marks(timeline),
        subtitle=f"Alliance and outcome by session, and the alerts raised (episode "
        f"{timeline.phase.replace('_', ' ')})",
    )


def effectiveness_words(t: TherapistEstimate) -> str:
    """A therapist's rate of reliable improvement as the site report prints it."""
    if t.status == "not_enough_data":
        return not_enough_data(t.n, t.min_cases)
    rate = t.reliable_improvement_rate
    if rate is None:
        return "—"
    return rate_with_interval(rate.estimate, rate.lower, rate.upper)


def site_report_html(summary: SiteSummary, charts: list[str]) -> str:
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
<h2>Therapist effectiveness</h2>
<p>Rate of reliable improvement, shrunk toward the site mean, with its 95% interval. A therapist
is estimated and classed only with at least {minimum} closed cases in a domain.</p>
{effectiveness}
<h2>Episodes with the most alliance alerts</h2>
{"".join(f"<figure>{c}</figure>" for c in charts) or '<p class="none">No alliance alerts yet.</p>'}
</body></html>"""
