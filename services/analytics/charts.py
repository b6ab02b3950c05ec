"""Episode charts as plain SVG (no browser-side code, no external assets). Pure: no I/O.

Two panels share the session axis: the alliance (each client-side respondent's alliance score,
with the instrument's concern line, ruptures ▼ and repairs ●) and the outcome (each outcome
score, with the clinical cutoff and the expected band). Text is escaped; nothing but ids,
numbers and fixed labels goes into the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, PANEL_HEIGHT, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, GAP = 720, 220, 56, 150, 34, 46
COLOURS = ("#1f6feb", "#b35900", "#2da44e", "#8250df", "#cf222e", "#0a7b83")


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
    ruptures: Sequence[tuple[int, float]] = ()
    repairs: Sequence[tuple[int, float]] = ()


@dataclass(frozen=True)
class EpisodeChart:
    title: str
    panels: Sequence[Panel] = field(default_factory=tuple)


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def render(chart: EpisodeChart) -> str:
    sessions = [s for p in chart.panels for series in p.series for s, _ in series.points]
    sessions += [s for p in chart.panels for s, _, _ in p.band]
    last = max(sessions, default=1)
    first = min(sessions, default=1)
    span = max(1, last - first)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    height = MARGIN_TOP + len(chart.panels) * (PANEL_HEIGHT + GAP) + 10

    def x(session: float) -> float:
        return MARGIN_LEFT + (session - first) / span * plot_width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN_LEFT}" y="20" font-size="15" font-weight="bold">'
        f"{escape(chart.title)}</text>",
    ]
    for index, panel in enumerate(chart.panels):
        top = MARGIN_TOP + index * (PANEL_HEIGHT + GAP) + 14
        bottom = top + PANEL_HEIGHT
        scale = (panel.high - panel.low) or 1.0

        def y(
            value: float, top: float = top, low: float = panel.low, scale: float = scale
        ) -> float:
            return top + PANEL_HEIGHT - (value - low) / scale * PANEL_HEIGHT

        parts.append(
            f'<text x="{MARGIN_LEFT}" y="{top - 6}" font-weight="bold">{escape(panel.title)}</text>'
        )
        parts.append(
            f'<rect x="{MARGIN_LEFT}" y="{top}" width="{plot_width}" '
            f'height="{PANEL_HEIGHT}" fill="#f6f8fa" stroke="#d0d7de"/>'
        )
        for tick in range(5):
            value = panel.low + tick * scale / 4
            parts.append(
                f'<text x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" '
                f'text-anchor="end" fill="#57606a">{_fmt(value)}</text>'
            )
        for session in range(first, last + 1):
            parts.append(
                f'<text x="{x(session):.1f}" y="{bottom + 15}" text-anchor="middle" '
                f'fill="#57606a">{session}</text>'
            )
        if panel.band:
            upper = " ".join(f"{x(s):.1f},{y(hi):.1f}" for s, _, hi in panel.band)
            lower = " ".join(f"{x(s):.1f},{y(lo):.1f}" for s, lo, _ in reversed(panel.band))
            parts.append(
                f'<polygon points="{upper} {lower}" fill="#2da44e" fill-opacity="0.12" '
                'stroke="none"><title>expected band</title></polygon>'
            )
        if panel.reference is not None:
            ref = y(panel.reference)
            parts.append(
                f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_width}" '
                f'y1="{ref:.1f}" y2="{ref:.1f}" stroke="#cf222e" stroke-dasharray="6 4"/>'
            )
            parts.append(
                f'<text x="{MARGIN_LEFT + plot_width + 6}" y="{ref + 4:.1f}" '
                f'fill="#cf222e">{escape(panel.reference_label)}</text>'
            )
        for number, series in enumerate(panel.series):
            colour = COLOURS[number % len(COLOURS)]
            ordered = sorted(series.points)
            path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in ordered)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
            for s, v in ordered:
                parts.append(
                    f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(series.label)} session {s}: {_fmt(v)}</title>"
                    "</circle>"
                )
            legend_y = top + 16 + number * 16
            parts.append(
                f'<line x1="{MARGIN_LEFT + plot_width + 6}" '
                f'x2="{MARGIN_LEFT + plot_width + 22}" y1="{legend_y - 4}" '
                f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>'
            )
            parts.append(
                f'<text x="{MARGIN_LEFT + plot_width + 26}" y="{legend_y}">'
                f"{escape(series.label)}</text>"
            )
        for s, v in panel.ruptures:
            cx, cy = x(s), y(v) - 10
            parts.append(
                f'<path d="M{cx - 6:.1f},{cy - 5:.1f} L{cx + 6:.1f},{cy - 5:.1f} '
                f'L{cx:.1f},{cy + 5:.1f} Z" fill="#cf222e" class="rupture">'
                f"<title>rupture at session {s}</title></path>"
            )
        for s, v in panel.repairs:
            parts.append(
                f'<circle cx="{x(s):.1f}" cy="{y(v) - 10:.1f}" r="5" fill="none" '
                f'stroke="#2da44e" stroke-width="2" class="repair">'
                f"<title>repair at session {s}</title></circle>"
            )
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_width / 2:.1f}" y="{height - 2}" '
        'text-anchor="middle" fill="#57606a">session</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
