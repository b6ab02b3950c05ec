"""The marks of the episode chart (services/analytics/charts.py): its sizes and colours, round
ticks, the session axis's frame, the legend's entries and the shapes drawn for marks. Pure:
strings of SVG, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, PANEL_HEIGHT, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, GAP = 800, 200, 56, 250, 48, 50
LANE_ROW, LEGEND_ROW, INSET = 18, 16, 14  # INSET: room between the frame and the first/last session
COLOURS = ("#1f6feb", "#b35900", "#2da44e", "#8250df", "#cf222e", "#0a7b83")
RED, GREEN, GREY = "#cf222e", "#2da44e", "#57606a"
NO_DATA = "no data yet"


def fmt(value: float) -> str:
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


def legend_line(x: float, y: float, *, colour: str, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    return (
        f'<line x1="{x}" x2="{x + 16}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
        f'stroke-width="2"{dash}/>'
    )


def triangle(cx: float, cy: float, colour: str, extra: str = "") -> str:
    return (
        f'<path d="M{cx - 6:.1f},{cy - 5:.1f} L{cx + 6:.1f},{cy - 5:.1f} '
        f'L{cx:.1f},{cy + 5:.1f} Z" fill="{colour}"{extra}'
    )


def ring(cx: float, cy: float, extra: str = "") -> str:
    return (
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="none" stroke="{GREEN}" '
        f'stroke-width="2"{extra}'
    )


def diamond(cx: float, cy: float, colour: str, extra: str = "") -> str:
    return (
        f'<path d="M{cx:.1f},{cy - 6:.1f} L{cx + 6:.1f},{cy:.1f} L{cx:.1f},{cy + 6:.1f} '
        f'L{cx - 6:.1f},{cy:.1f} Z" fill="{colour}"{extra}'
    )


def swatch(x: float, y: float, *, opacity: float) -> str:
    return (
        f'<rect x="{x}" y="{y - 9}" width="16" height="10" fill="{GREEN}" '
        f'fill-opacity="{opacity}"/>'
    )


def entry(marker: str, symbol: str, label: str, x: float, y: float) -> str:
    return (
        f'<g class="legend-entry" data-marker="{escape(marker)}">{symbol}'
        f'<text x="{x + 22}" y="{y}">{escape(label)}</text></g>'
    )


@dataclass(frozen=True)
class Frame:
    first: int
    span: float
    plot_width: float

    def x(self, session: float) -> float:
        inner = self.plot_width - 2 * INSET
        return MARGIN_LEFT + INSET + (session - self.first) / self.span * inner


def session_labels(frame: Frame, last: int, bottom: float) -> list[str]:
    return [
        f'<text x="{frame.x(s):.1f}" y="{bottom + 15}" text-anchor="middle" '
        f'fill="{GREY}">{s}</text>'
        for s in session_ticks(frame.first, last)
    ]
