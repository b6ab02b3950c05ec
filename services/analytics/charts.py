"""Episode charts as plain SVG (no browser-side code, no external assets). Pure: no I/O.

Panels share the session axis, one per instrument on its own range: alliance instruments (each
client-side respondent's score, with the concern line, ruptures ▼ and repairs ○) and outcome
instruments (each score, with the clinical cutoff and, where a trajectories model has the
client's band, the expected 25–75 and 10–90 percentile bands); below them an alerts lane, one
row per alert kind raised in the episode with a mark at each session one was opened, and its
follow-up: a square where it was first acted on, a line to where it resolved (a green bar) or a
clinician closed it (a grey square). An urgent alert (risk) also draws a red line across every
panel at its session. Between the panels and the alerts, the episode's course: each session
attended (●), missed (✕, red) or cancelled (○), and each phase change (a flag with the phase,
and a dotted line across the panels). Positions between sessions (an action, a phase change)
are fractional on the session axis. Every kind of mark has a legend entry, an empty panel says
"no data yet", and the value axes have round ticks that include zero. Text is escaped; nothing
but ids, numbers and fixed labels goes into the picture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from html import escape

from services.analytics.chart_course import (
    PHASE_COLOUR,
    PhaseMark,
    SessionMark,
    course,
    course_rows,
)
from services.analytics.chart_marks import (
    COLOURS,
    GAP,
    GREEN,
    GREY,
    LANE_ROW,
    LEGEND_ROW,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    NO_DATA,
    PANEL_HEIGHT,
    RED,
    WIDTH,
    Frame,
    diamond,
    entry,
    fmt,
    legend_line,
    ring,
    session_labels,
    swatch,
    ticks,
    triangle,
)

# One colour per alert kind, shared by the episode chart and the demo's alert timeline.
KIND_COLOURS = {
    "risk": "#cf222e",
    "low_alliance": "#fb8f44",
    "early_alliance_risk": "#bf8700",
    "rupture": "#8250df",
    "unresolved_rupture": "#6639ba",
    "repair": "#2da44e",
    "split_alliance": "#0a7b83",
    "rating_discrepancy": "#57606a",
    "deterioration": "#a40e26",
    "not_on_track": "#1f6feb",
    "dropout_risk": "#e16f24",
    "rematch_suggested": "#116329",
    "missed_sessions": "#9a6700",
    "no_contact": "#953800",
}


@dataclass(frozen=True)
class Series:
    label: str  # e.g. "client · srs"
    points: Sequence[tuple[int, float]]  # (session, score)


@dataclass(frozen=True)
class Panel:
    title: str
    low: float
    high: float
    series: Sequence[Series]
    reference: float | None = None  # concern line or clinical cutoff
    reference_label: str = ""
    band: Sequence[tuple[int, float, float]] = ()  # expected (session, lower, upper)
    band_label: str = "expected range"
    outer_band: Sequence[tuple[int, float, float]] = ()  # a wider one, drawn lighter
    outer_band_label: str = ""
    ruptures: Sequence[tuple[int, float]] = ()
    repairs: Sequence[tuple[int, float]] = ()


@dataclass(frozen=True)
class AlertMark:
    """One alert on the episode's alerts lane: opened at ``session``."""

    session: int
    kind: str  # its code (the lane's row and colour)
    label: str  # its plain name
    detail: str = ""  # e.g. "resolved at session 5"
    urgent: bool = False  # also drawn across every panel
    acted_on: float | None = None  # where on the session axis it was first acted on
    ended: float | None = None  # where it resolved or was closed
    ending: str = ""  # "resolved" or "closed"


@dataclass(frozen=True)
class EpisodeChart:
    title: str
    panels: Sequence[Panel] = field(default_factory=tuple)
    alerts: Sequence[AlertMark] = ()
    subtitle: str = ""
    sessions: Sequence[SessionMark] = ()
    phases: Sequence[PhaseMark] = ()


def _panel(panel: Panel, top: float, frame: Frame, last: int) -> list[str]:
    """One panel's SVG with its legend beside it. Longer than most on purpose: the parts are
    listed in the order they are painted (frame, ticks, band, reference line, series, marks),
    and each legend entry is added next to what it names."""
    bottom = top + PANEL_HEIGHT
    scale = (panel.high - panel.low) or 1.0
    legend_x = MARGIN_LEFT + frame.plot_width + 10
    x = frame.x

    def y(value: float) -> float:
        return top + PANEL_HEIGHT - (value - panel.low) / scale * PANEL_HEIGHT

    parts = [
        f'<text x="{MARGIN_LEFT}" y="{top - 6}" font-weight="bold">{escape(panel.title)}</text>',
        f'<rect x="{MARGIN_LEFT}" y="{top}" width="{frame.plot_width}" '
        f'height="{PANEL_HEIGHT}" fill="#f6f8fa" stroke="#d0d7de"/>',
    ]
    for value in ticks(panel.low, panel.high):
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'fill="{GREY}" class="tick">{fmt(value)}</text>'
        )
    parts += session_labels(frame, last, bottom)
    legend: list[str] = []

    def add_entry(marker: str, symbol: Callable[[float], str], label: str) -> None:
        ly = top + 14 + len(legend) * LEGEND_ROW
        legend.append(entry(marker, symbol(ly), label, legend_x, ly))

    if not any(series.points for series in panel.series):
        parts.append(
            f'<text x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" y="{top + PANEL_HEIGHT / 2:.1f}" '
            f'text-anchor="middle" fill="{GREY}" font-size="14" class="empty">{NO_DATA}</text>'
        )
    for band, label, opacity, name in (
        (panel.outer_band, panel.outer_band_label, 0.10, "outer-band"),
        (panel.band, panel.band_label, 0.22, "band"),
    ):
        if band:
            run = sorted(band)
            upper = " ".join(f"{x(s):.1f},{y(hi):.1f}" for s, _, hi in run)
            lower = " ".join(f"{x(s):.1f},{y(lo):.1f}" for s, lo, _ in reversed(run))
            parts.append(
                f'<polygon points="{upper} {lower}" fill="{GREEN}" fill-opacity="{opacity}" '
                f'stroke="none" class="{name}"><title>{escape(label)}</title></polygon>'
            )
    if panel.reference is not None:
        ref = y(panel.reference)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + frame.plot_width}" y1="{ref:.1f}" '
            f'y2="{ref:.1f}" stroke="{RED}" stroke-dasharray="6 4" class="reference"/>'
        )
    for number, series in enumerate(panel.series):
        colour = COLOURS[number % len(COLOURS)]
        ordered = sorted(series.points)
        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in ordered)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for s, v in ordered:
            parts.append(
                f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(series.label)} session {s}: {fmt(v)}</title></circle>"
            )
        add_entry("series", partial(legend_line, legend_x, colour=colour), series.label)
    if panel.reference is not None:
        add_entry(
            "reference",
            lambda ly: legend_line(legend_x, ly, colour=RED, dashed=True),
            panel.reference_label or fmt(panel.reference),
        )
    for band, label, opacity, marker in (
        (panel.band, panel.band_label, 0.35, "band"),
        (panel.outer_band, panel.outer_band_label, 0.15, "outer-band"),
    ):
        if band:
            add_entry(
                marker,
                partial(swatch, legend_x, opacity=opacity),
                label,
            )
    for s, v in panel.ruptures:
        parts.append(
            triangle(x(s), y(v) - 10, RED, ' class="rupture"')
            + f"><title>rupture at session {s}</title></path>"
        )
    if panel.ruptures:
        add_entry("rupture", lambda ly: triangle(legend_x + 8, ly - 4, RED, "") + "/>", "Rupture")
    for s, v in panel.repairs:
        parts.append(
            ring(x(s), y(v) - 10, ' class="repair"')
            + f"><title>repair at session {s}</title></circle>"
        )
    if panel.repairs:
        add_entry("repair", lambda ly: ring(legend_x + 8, ly - 4) + "/>", "Rupture repaired")
    return parts + legend


def _follow_up(alert: AlertMark, cy: float, colour: str, x: Callable[[float], float]) -> list[str]:
    """An alert's follow-up on its row: a line from its opening to where it ended (a green bar
    if it resolved, a grey square if a clinician closed it), a square where it was acted on."""
    parts: list[str] = []
    opened = x(alert.session)
    if alert.ended is not None:
        end = x(alert.ended)
        parts.append(
            f'<line x1="{opened:.1f}" x2="{end:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
            f'stroke="{colour}" stroke-width="2" stroke-opacity="0.6" class="alert-course"/>'
        )
        where = f"{alert.label}: {alert.ending} ({alert.detail or 'after its opening'})"
        parts.append(
            f'<rect x="{end - 1.5:.1f}" y="{cy - 7:.1f}" width="3" height="14" fill="{GREEN}" '
            f'class="resolved"><title>{escape(where)}</title></rect>'
            if alert.ending == "resolved"
            else f'<rect x="{end - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" fill="{GREY}" '
            f'class="closed"><title>{escape(where)}</title></rect>'
        )
    if alert.acted_on is not None:
        parts.append(
            f'<rect x="{x(alert.acted_on) - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" '
            f'fill="white" stroke="{PHASE_COLOUR}" stroke-width="1.5" class="acted-on">'
            f"<title>{escape(alert.label)}: acted on</title></rect>"
        )
    return parts


# The follow-up marks' legend: (marker, what the mark is, label).
FOLLOW_UP_LEGEND = (
    ("acted-on", "acted_on", "acted on (first action)"),
    ("resolved", "resolved", "resolved"),
    ("closed", "closed", "closed by a clinician"),
)


def _follow_up_legend(alerts: Sequence[AlertMark]) -> list[tuple[str, str]]:
    shown = {
        "acted_on": any(a.acted_on is not None for a in alerts),
        "resolved": any(a.ended is not None and a.ending == "resolved" for a in alerts),
        "closed": any(a.ended is not None and a.ending != "resolved" for a in alerts),
    }
    return [(marker, label) for marker, what, label in FOLLOW_UP_LEGEND if shown[what]]


def _follow_up_symbol(marker: str, lx: float, cy: float) -> str:
    if marker == "resolved":
        return f'<rect x="{lx + 6.5}" y="{cy - 7:.1f}" width="3" height="14" fill="{GREEN}"/>'
    fill, stroke = ("white", PHASE_COLOUR) if marker == "acted-on" else (GREY, GREY)
    return (
        f'<rect x="{lx + 4}" y="{cy - 4:.1f}" width="8" height="8" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="1.5"/>'
    )


def _lane(alerts: Sequence[AlertMark], top: float, frame: Frame, last: int) -> list[str]:
    kinds: dict[str, AlertMark] = {}
    for alert in alerts:
        kinds.setdefault(alert.kind, alert)
    rows = list(kinds)
    height = max(1, len(rows)) * LANE_ROW + 8
    legend_x = MARGIN_LEFT + frame.plot_width + 10
    parts = [
        f'<text x="{MARGIN_LEFT}" y="{top - 6}" font-weight="bold">Alerts</text>',
        f'<rect x="{MARGIN_LEFT}" y="{top}" width="{frame.plot_width}" height="{height}" '
        'fill="#f6f8fa" stroke="#d0d7de"/>',
    ]
    if not rows:
        parts.append(
            f'<text x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" y="{top + 17}" '
            f'text-anchor="middle" fill="{GREY}" class="empty">no alerts in this episode</text>'
        )
    for index, kind in enumerate(rows):
        cy = top + 4 + LANE_ROW * index + LANE_ROW / 2
        first = kinds[kind]
        colour = RED if first.urgent else KIND_COLOURS.get(kind, GREY)
        symbol = (
            f'<line x1="{legend_x + 8}" x2="{legend_x + 8}" y1="{cy - 8:.1f}" y2="{cy + 8:.1f}" '
            f'stroke="{RED}" stroke-width="1.5" stroke-dasharray="3 3"/>'
            + diamond(legend_x + 8, cy, colour)
            + "/>"
            if first.urgent
            else f'<circle cx="{legend_x + 8}" cy="{cy:.1f}" r="5" fill="{colour}"/>'
        )
        parts.append(entry(f"alert:{kind}", symbol, first.label, legend_x, cy + 4))
        for alert in (a for a in alerts if a.kind == kind):
            parts += _follow_up(alert, cy, colour, frame.x)
        for alert in (a for a in alerts if a.kind == kind):
            title = f"{alert.label}: opened at session {alert.session}"
            title += f", {alert.detail}" if alert.detail else ""
            extra = f' class="alert" data-kind="{escape(kind)}"'
            shape = (
                diamond(frame.x(alert.session), cy, colour, extra)
                + f"><title>{escape(title)}</title></path>"
                if alert.urgent
                else f'<circle cx="{frame.x(alert.session):.1f}" cy="{cy:.1f}" r="5" '
                f'fill="{colour}"{extra}><title>{escape(title)}</title></circle>'
            )
            parts.append(shape)
    for index, (marker, label) in enumerate(_follow_up_legend(alerts)):
        cy = top + 4 + LANE_ROW * (len(rows) + index) + LANE_ROW / 2
        symbol = _follow_up_symbol(marker, legend_x, cy)
        parts.append(entry(marker, symbol, label, legend_x, cy + 4))
    return parts + session_labels(frame, last, top + height)


def _alert_rows(alerts: Sequence[AlertMark]) -> int:
    """How many rows the alerts lane takes, its legend included."""
    return max(1, len({a.kind for a in alerts}) + len(_follow_up_legend(alerts)))


def render(chart: EpisodeChart) -> str:
    """The chart as SVG: the panels, the episode's course, the alerts lane."""
    sessions = [s for p in chart.panels for series in p.series for s, _ in series.points]
    sessions += [s for p in chart.panels for s, _, _ in (*p.band, *p.outer_band)]
    sessions += [a.session for a in chart.alerts] + [m.session for m in chart.sessions]
    positions: list[float] = [*sessions, *(p.position for p in chart.phases)]
    positions += [a.ended for a in chart.alerts if a.ended is not None]
    positions += [a.acted_on for a in chart.alerts if a.acted_on is not None]
    last = max(sessions, default=1)
    first = min(sessions, default=1)
    span = max(1.0, max(positions, default=last) - first)
    frame = Frame(first, span, WIDTH - MARGIN_LEFT - MARGIN_RIGHT)
    course_top = MARGIN_TOP + len(chart.panels) * (PANEL_HEIGHT + GAP) + 14
    lane_top = course_top + course_rows(chart.sessions, chart.phases) * LANE_ROW + 8 + GAP / 2
    axis_label = lane_top + max(1, len({a.kind for a in chart.alerts})) * LANE_ROW + 8 + 32
    height = int(max(axis_label + 8, lane_top + _alert_rows(chart.alerts) * LANE_ROW + 8 + 12))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN_LEFT}" y="20" font-size="15" font-weight="bold" class="title">'
        f"{escape(chart.title)}</text>",
    ]
    if chart.subtitle:
        parts.append(
            f'<text x="{MARGIN_LEFT}" y="37" fill="{GREY}">{escape(chart.subtitle)}</text>'
        )
    for index, panel in enumerate(chart.panels):
        top = MARGIN_TOP + index * (PANEL_HEIGHT + GAP) + 14
        parts += _panel(panel, top, frame, last)
    tops = [MARGIN_TOP + i * (PANEL_HEIGHT + GAP) + 14 for i in range(len(chart.panels))]
    for phase in chart.phases:  # a dotted line across every panel where the phase changed
        across = frame.x(phase.position)
        for top in tops:
            parts.append(
                f'<line x1="{across:.1f}" x2="{across:.1f}" y1="{top}" y2="{top + PANEL_HEIGHT}" '
                f'stroke="{PHASE_COLOUR}" stroke-width="1" stroke-dasharray="1 3" '
                f'class="phase-line"><title>{escape(phase.label)}</title></line>'
            )
    for alert in (a for a in chart.alerts if a.urgent):
        across = frame.x(alert.session)
        for top in tops:
            parts.append(
                f'<line x1="{across:.1f}" x2="{across:.1f}" y1="{top}" y2="{top + PANEL_HEIGHT}" '
                f'stroke="{RED}" stroke-width="1.5" stroke-dasharray="3 3" class="urgent">'
                f"<title>{escape(alert.label)} at session {alert.session}</title></line>"
            )
    parts += course(chart.sessions, chart.phases, course_top, frame)
    parts += _lane(chart.alerts, lane_top, frame, last)
    parts.append(
        f'<text x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" y="{axis_label:.0f}" '
        f'text-anchor="middle" fill="{GREY}">session</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
