"""Episode charts as plain SVG (no browser-side code, no external assets). Pure: no I/O.

Panels share the session axis, one per instrument on its own range: alliance instruments (each
client-side respondent's score, with the concern line, ruptures ▼ and repairs ○) and outcome
instruments (each score, with the clinical cutoff and, where a trajectories model has the
client's band, the expected 25–75 and 10–90 percentile bands); below them an alerts lane, one
row per alert kind raised in the episode with a mark at each session one was opened. An urgent alert
(risk) also draws a red line across every panel at its session. Every kind of mark has a legend
entry, an empty panel says "no data yet", and the value axes have round ticks that include
zero. Text is escaped; nothing but ids, numbers and fixed labels goes into the picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from html import escape

WIDTH, PANEL_HEIGHT, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, GAP = 800, 200, 56, 250, 48, 50
LANE_ROW, LEGEND_ROW, INSET = 18, 16, 14  # INSET: room between the frame and the first/last session
COLOURS = ("#1f6feb", "#b35900", "#2da44e", "#8250df", "#cf222e", "#0a7b83")
RED, GREEN, GREY = "#cf222e", "#2da44e", "#57606a"
NO_DATA = "no data yet"

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


@dataclass(frozen=True)
class EpisodeChart:
    title: str
    panels: Sequence[Panel] = field(default_factory=tuple)
    alerts: Sequence[AlertMark] = ()
    subtitle: str = ""


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def ticks(low: float, high: float, target: int = 5, whole: bool = False) -> list[float]:
    """Round tick values from ``low`` to ``high`` (steps of 1, 2, 2.5 or 5 × 10ⁿ, no 2.5 when
    ``whole``); every tick is a multiple of the step, so zero is one whenever the range
    holds it."""
    if high <= low:
        return [low]
    raw = (high - low) / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * power for m in steps if m * power >= raw)
    if whole:
        step = max(1.0, step)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(k * step, 10) + 0.0 for k in range(first, last + 1)]


def session_ticks(first: int, last: int, most: int = 16) -> list[int]:
    step = 1
    while (last - first) / step >= most:
        step = {1: 2, 2: 5}.get(step, step * 2)
    return [s for s in range(first, last + 1) if s % step == 0 or s == first]


def _legend_line(x: float, y: float, *, colour: str, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    return (
        f'<line x1="{x}" x2="{x + 16}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
        f'stroke-width="2"{dash}/>'
    )


def _triangle(cx: float, cy: float, colour: str, extra: str = "") -> str:
    return (
        f'<path d="M{cx - 6:.1f},{cy - 5:.1f} L{cx + 6:.1f},{cy - 5:.1f} '
        f'L{cx:.1f},{cy + 5:.1f} Z" fill="{colour}"{extra}'
    )


def _ring(cx: float, cy: float, extra: str = "") -> str:
    return (
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="none" stroke="{GREEN}" '
        f'stroke-width="2"{extra}'
    )


def _diamond(cx: float, cy: float, colour: str, extra: str = "") -> str:
    return (
        f'<path d="M{cx:.1f},{cy - 6:.1f} L{cx + 6:.1f},{cy:.1f} L{cx:.1f},{cy + 6:.1f} '
        f'L{cx - 6:.1f},{cy:.1f} Z" fill="{colour}"{extra}'
    )


def _swatch(x: float, y: float, *, opacity: float) -> str:
    return (
        f'<rect x="{x}" y="{y - 9}" width="16" height="10" fill="{GREEN}" '
        f'fill-opacity="{opacity}"/>'
    )


def _entry(marker: str, symbol: str, label: str, x: float, y: float) -> str:
    return (
        f'<g class="legend-entry" data-marker="{escape(marker)}">{symbol}'
        f'<text x="{x + 22}" y="{y}">{escape(label)}</text></g>'
    )


@dataclass(frozen=True)
class _Frame:
    first: int
    span: int
    plot_width: float

    def x(self, session: float) -> float:
        inner = self.plot_width - 2 * INSET
        return MARGIN_LEFT + INSET + (session - self.first) / self.span * inner


def _session_labels(frame: _Frame, last: int, bottom: float) -> list[str]:
    return [
        f'<text x="{frame.x(s):.1f}" y="{bottom + 15}" text-anchor="middle" '
        f'fill="{GREY}">{s}</text>'
        for s in session_ticks(frame.first, last)
    ]


def _panel(panel: Panel, top: float, frame: _Frame, last: int) -> list[str]:
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
            f'fill="{GREY}" class="tick">{_fmt(value)}</text>'
        )
    parts += _session_labels(frame, last, bottom)
    legend: list[str] = []

    def entry(marker: str, symbol: Callable[[float], str], label: str) -> None:
        ly = top + 14 + len(legend) * LEGEND_ROW
        legend.append(_entry(marker, symbol(ly), label, legend_x, ly))

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
                f"<title>{escape(series.label)} session {s}: {_fmt(v)}</title></circle>"
            )
        entry("series", partial(_legend_line, legend_x, colour=colour), series.label)
    if panel.reference is not None:
        entry(
            "reference",
            lambda ly: _legend_line(legend_x, ly, colour=RED, dashed=True),
            panel.reference_label or _fmt(panel.reference),
        )
    for band, label, opacity, marker in (
        (panel.band, panel.band_label, 0.35, "band"),
        (panel.outer_band, panel.outer_band_label, 0.15, "outer-band"),
    ):
        if band:
            entry(
                marker,
                partial(_swatch, legend_x, opacity=opacity),
                label,
            )
    for s, v in panel.ruptures:
        parts.append(
            _triangle(x(s), y(v) - 10, RED, ' class="rupture"')
            + f"><title>rupture at session {s}</title></path>"
        )
    if panel.ruptures:
        entry("rupture", lambda ly: _triangle(legend_x + 8, ly - 4, RED, "") + "/>", "Rupture")
    for s, v in panel.repairs:
        parts.append(
            _ring(x(s), y(v) - 10, ' class="repair"')
            + f"><title>repair at session {s}</title></circle>"
        )
    if panel.repairs:
        entry("repair", lambda ly: _ring(legend_x + 8, ly - 4) + "/>", "Rupture repaired")
    return parts + legend


def _lane(alerts: Sequence[AlertMark], top: float, frame: _Frame, last: int) -> list[str]:
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
            + _diamond(legend_x + 8, cy, colour)
            + "/>"
            if first.urgent
            else f'<circle cx="{legend_x + 8}" cy="{cy:.1f}" r="5" fill="{colour}"/>'
        )
        parts.append(_entry(f"alert:{kind}", symbol, first.label, legend_x, cy + 4))
        for alert in (a for a in alerts if a.kind == kind):
            title = f"{alert.label}: opened at session {alert.session}"
            title += f", {alert.detail}" if alert.detail else ""
            extra = f' class="alert" data-kind="{escape(kind)}"'
            shape = (
                _diamond(frame.x(alert.session), cy, colour, extra)
                + f"><title>{escape(title)}</title></path>"
                if alert.urgent
                else f'<circle cx="{frame.x(alert.session):.1f}" cy="{cy:.1f}" r="5" '
                f'fill="{colour}"{extra}><title>{escape(title)}</title></circle>'
            )
            parts.append(shape)
    return parts + _session_labels(frame, last, top + height)


def render(chart: EpisodeChart) -> str:
    sessions = [s for p in chart.panels for series in p.series for s, _ in series.points]
    sessions += [s for p in chart.panels for s, _, _ in (*p.band, *p.outer_band)]
    sessions += [a.session for a in chart.alerts]
    last = max(sessions, default=1)
    first = min(sessions, default=1)
    frame = _Frame(first, max(1, last - first), WIDTH - MARGIN_LEFT - MARGIN_RIGHT)
    rows = max(1, len({a.kind for a in chart.alerts}))
    lane_top = MARGIN_TOP + len(chart.panels) * (PANEL_HEIGHT + GAP) + 14
    height = int(lane_top + rows * LANE_ROW + 8 + 44)

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
    for alert in (a for a in chart.alerts if a.urgent):
        across = frame.x(alert.session)
        for top in tops:
            parts.append(
                f'<line x1="{across:.1f}" x2="{across:.1f}" y1="{top}" y2="{top + PANEL_HEIGHT}" '
                f'stroke="{RED}" stroke-width="1.5" stroke-dasharray="3 3" class="urgent">'
                f"<title>{escape(alert.label)} at session {alert.session}</title></line>"
            )
    parts += _lane(chart.alerts, lane_top, frame, last)
    parts.append(
        f'<text x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" y="{height - 4}" '
        f'text-anchor="middle" fill="{GREY}">session</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
