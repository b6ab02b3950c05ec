"""The demo report's own charts as inline SVG: alerts per week by kind, and point estimates with
their 95% intervals (a forest plot). Alert kinds carry their plain names and the analytics
service's colours; every mark has a legend entry; axes have round ticks that include zero; an
estimate without an interval is drawn as a hollow mark and its row says why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from services.analytics.chart_marks import ticks
from services.analytics.charts import KIND_COLOURS
from services.analytics.domain import by_urgency, plain_name

BLUE, RED, GREY = "#1f6feb", "#cf222e", "#57606a"


@dataclass(frozen=True)
class Row:
    """One line of a forest plot: an estimate and its interval (None: no interval, and why)."""

    label: str
    estimate: float
    lower: float | None
    upper: float | None
    note: str = ""


def _svg_open(width: int, height: int, aria: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="{escape(aria)}" class="chart">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]


def alert_timeline_svg(by_week: dict[int, Counter[str]], weeks: int) -> str:
    kinds = by_urgency({k for c in by_week.values() for k in c})
    width, height, left, right, top, bottom = 800, 300, 50, 250, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    busiest = max((sum(c.values()) for c in by_week.values()), default=0)
    marks = ticks(0, max(1, busiest), whole=True)
    if marks[-1] < busiest:
        marks.append(marks[-1] + (marks[1] - marks[0] if len(marks) > 1 else 1))
    peak = marks[-1] or 1
    bar_w = plot_w / max(1, weeks)
    parts = _svg_open(width, height, "Alerts delivered per week, by kind")
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f6f8fa" '
        'stroke="#d0d7de"/>'
    )
    for value in marks:
        y = top + plot_h - plot_h * value / peak
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{GREY}" '
            f'class="tick">{value:.0f}</text>'
        )
    if not kinds:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
            f'fill="{GREY}" font-size="14" class="empty">no alerts delivered</text>'
        )
    for week in range(1, weeks + 1):
        x = left + (week - 1) * bar_w
        y = top + plot_h
        for kind in kinds:
            n = by_week.get(week, Counter()).get(kind, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                f'fill="{KIND_COLOURS.get(kind, "#999")}"><title>week {week}: {n} × '
                f"{escape(plain_name(kind))}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 15}" text-anchor="middle" '
            f'fill="{GREY}">{week}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'fill="{GREY}">week</text>'
    )
    for i, kind in enumerate(kinds):
        y = top + 10 + i * 17
        parts.append(
            f'<g class="legend-entry" data-marker="alert:{escape(kind)}">'
            f'<rect x="{left + plot_w + 10}" y="{y - 9}" width="12" height="12" '
            f'fill="{KIND_COLOURS.get(kind, "#999")}"/>'
            f'<text x="{left + plot_w + 28}" y="{y + 1}">{escape(plain_name(kind))}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _forest_legend(x: float, y: float, reference: bool, hollow: bool) -> list[str]:
    def estimate(at: float) -> str:
        return f'<rect x="{at}" y="{y - 8}" width="8" height="8" fill="{BLUE}"/>'

    def interval(at: float) -> str:
        return (
            f'<line x1="{at - 4}" x2="{at + 12}" y1="{y - 4}" y2="{y - 4}" stroke="{BLUE}" '
            'stroke-width="2"/>'
        )

    def zero(at: float) -> str:
        return (
            f'<line x1="{at + 4}" x2="{at + 4}" y1="{y - 11}" y2="{y + 2}" stroke="{RED}" '
            'stroke-dasharray="3 2"/>'
        )

    def none(at: float) -> str:
        return (
            f'<rect x="{at}" y="{y - 8}" width="8" height="8" fill="white" stroke="{BLUE}" '
            'stroke-width="1.5"/>'
        )

    entries = [("estimate", estimate), ("95% interval", interval)]
    if reference:
        entries.append(("no difference (0)", zero))
    if hollow:
        entries.append(("estimate without an interval", none))
    parts = []
    for label, symbol in entries:
        parts.append(
            f'<g class="legend-entry" data-marker="{escape(label)}">{symbol(x)}'
            f'<text x="{x + 18}" y="{y}">{escape(label)}</text></g>'
        )
        x += 40 + 6.5 * len(label)
    return parts


def forest_svg(
    rows: Sequence[Row],
    *,
    label: str,
    reference: float | None = 0.0,
    low: float | None = None,
    high: float | None = None,
    percent: bool = True,
    aria: str = "",
) -> str:
    """Point estimates with 95% intervals, one row each."""
    width, left, right, top, row_h = 800, 300, 30, 24, 24
    height = top + row_h * max(1, len(rows)) + 66
    ends = [r.estimate for r in rows]
    ends += [v for r in rows for v in (r.lower, r.upper) if v is not None]
    ends += [v for v in (reference, low, high, 0.0) if v is not None]
    lo = low if low is not None else min(ends)
    hi = high if high is not None else max(ends)
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    def fmt(v: float) -> str:
        return f"{100 * v:.0f}" if percent else f"{v:.1f}"

    bottom = top + row_h * max(1, len(rows))
    parts = _svg_open(width, height, aria or label)
    parts.append(
        f'<rect x="{left}" y="{top - 12}" width="{plot_w}" height="{bottom - top + 4}" '
        'fill="#f6f8fa" stroke="#d0d7de"/>'
    )
    for v in ticks(lo, hi, target=6):
        parts.append(
            f'<text x="{x(v):.1f}" y="{bottom + 18}" text-anchor="middle" fill="{GREY}" '
            f'class="tick">{fmt(v)}</text>'
        )
    if reference is not None:
        parts.append(
            f'<line x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="{top - 12}" '
            f'y2="{bottom - 8}" stroke="{RED}" stroke-dasharray="5 4"/>'
        )
    for i, row in enumerate(rows):
        y = top + i * row_h
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(row.label)}</text>'
        )
        if row.lower is None or row.upper is None:
            at = x(row.estimate)
            side = (
                f'x="{at + 9:.1f}" text-anchor="start"'
                if at < left + plot_w / 2
                else f'x="{at - 9:.1f}" text-anchor="end"'
            )
            parts.append(
                f'<rect x="{at - 4:.1f}" y="{y - 4}" width="8" height="8" '
                f'fill="white" stroke="{BLUE}" stroke-width="1.5" class="no-interval">'
                f"<title>{escape(row.label)}: {fmt(row.estimate)} ({escape(row.note)})</title>"
                f'</rect><text {side} y="{y + 4}" fill="{GREY}" font-size="11">'
                f"{escape(row.note)}</text>"
            )
            continue
        parts.append(
            f'<line x1="{x(row.lower):.1f}" x2="{x(row.upper):.1f}" y1="{y}" y2="{y}" '
            f'stroke="{BLUE}" stroke-width="2"/>'
        )
        parts.append(
            f'<rect x="{x(row.estimate) - 4:.1f}" y="{y - 4}" width="8" height="8" '
            f'fill="{BLUE}"><title>{escape(row.label)}: {fmt(row.estimate)} '
            f"[{fmt(row.lower)}, {fmt(row.upper)}]</title></rect>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 36}" text-anchor="middle" '
        f'fill="{GREY}">{escape(label)}</text>'
    )
    hollow = any(r.lower is None or r.upper is None for r in rows)
    parts += _forest_legend(20, height - 8, reference is not None, hollow)
    parts.append("</svg>")
    return "\n".join(parts)
