"""The episode chart's course lane (services/analytics/charts.py): how each session turned out
(attended ●, missed ✕ in red, cancelled ○) and each phase change (a flag; the labels of changes
too close to read apart joined, e.g. "matched → active"), each with its legend entry. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from services.analytics.chart_marks import GREEN, GREY, LANE_ROW, MARGIN_LEFT, RED, Frame, entry

# How a session turned out: (legend label, mark colour), in legend order.
SESSION_MARKS = {
    "attended": ("attended", GREEN),
    "missed": ("missed (did not attend)", RED),
    "cancelled_by_client": ("cancelled by the client", GREY),
    "cancelled_by_clinic": ("cancelled by the clinic", GREY),
}
PHASE_COLOUR = "#24292f"


@dataclass(frozen=True)
class SessionMark:
    """How one session turned out: a ``SESSION_MARKS`` status."""

    session: int
    status: str


@dataclass(frozen=True)
class PhaseMark:
    """The episode entered ``label`` (its plain name) at ``position`` on the session axis."""

    position: float
    label: str
    detail: str = ""  # e.g. "from active: no contact"


def session_mark(mark: SessionMark, cx: float, cy: float, extra: str = "") -> str:
    """A session: ● attended, ✕ missed, ○ cancelled."""
    colour = SESSION_MARKS.get(mark.status, ("", GREY))[1]
    if mark.status == "missed":
        return (
            f'<path d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} M{cx - 5:.1f},'
            f'{cy + 5:.1f} L{cx + 5:.1f},{cy - 5:.1f}" stroke="{colour}" stroke-width="2.5"'
            f"{extra}"
        )
    fill = colour if mark.status == "attended" else "white"
    return (
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{fill}" stroke="{colour}" '
        f'stroke-width="1.5"{extra}'
    )


def course(
    sessions: Sequence[SessionMark], phases: Sequence[PhaseMark], top: float, frame: Frame
) -> list[str]:
    """The episode's course lane: its sessions, then (a second row) its phase changes."""
    rows = 1 + bool(phases)
    legend_x = MARGIN_LEFT + frame.plot_width + 10
    parts = [
        f'<text x="{MARGIN_LEFT}" y="{top - 6}" font-weight="bold">Sessions and phases</text>',
        f'<rect x="{MARGIN_LEFT}" y="{top}" width="{frame.plot_width}" '
        f'height="{rows * LANE_ROW + 8}" fill="#f6f8fa" stroke="#d0d7de"/>',
    ]
    cy = top + 4 + LANE_ROW / 2
    if not sessions:
        parts.append(
            f'<text x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" y="{cy + 4:.1f}" '
            f'text-anchor="middle" fill="{GREY}" class="empty">no sessions reported</text>'
        )
    for mark in sorted(sessions, key=lambda m: m.session):
        label = SESSION_MARKS.get(mark.status, (mark.status.replace("_", " "), GREY))[0]
        extra = f' class="session" data-status="{escape(mark.status)}"'
        closing = "</path>" if mark.status == "missed" else "</circle>"
        parts.append(
            session_mark(mark, frame.x(mark.session), cy, extra)
            + f"><title>session {mark.session}: {escape(label)}</title>{closing}"
        )
    statuses = {m.status for m in sessions}
    legend_row = 0
    for status, (label, _) in SESSION_MARKS.items():
        if status in statuses:
            ly = top + 4 + LANE_ROW * legend_row + LANE_ROW / 2
            symbol = session_mark(SessionMark(0, status), legend_x + 8, ly) + "/>"
            parts.append(entry(f"session:{status}", symbol, f"session {label}", legend_x, ly + 4))
            legend_row += 1
    py = cy + LANE_ROW
    for cluster in phase_clusters(phases, frame):
        for phase in cluster:
            px = frame.x(phase.position)
            title = escape(f"{phase.label}" + (f" ({phase.detail})" if phase.detail else ""))
            parts.append(
                f'<g class="phase" data-phase="{escape(phase.label)}">'
                f'<path d="M{px:.1f},{py + 7:.1f} L{px:.1f},{py - 7:.1f} L{px + 8:.1f},'
                f'{py - 4:.1f} L{px:.1f},{py - 1:.1f}" fill="{PHASE_COLOUR}" '
                f'stroke="{PHASE_COLOUR}"/><title>{title}</title></g>'
            )
        label = cluster_label(cluster)
        after = frame.x(cluster[-1].position) + 10
        place = f'x="{after:.1f}"'  # after the last flag, or before the first near the edge
        if after + len(label) * 6 > MARGIN_LEFT + frame.plot_width:
            place = f'x="{frame.x(cluster[0].position) - 4:.1f}" text-anchor="end"'
        parts.append(
            f'<text {place} y="{py + 5:.1f}" font-size="10" fill="{PHASE_COLOUR}" '
            f'class="phase-label">{escape(label)}</text>'
        )
    if phases:
        ly = top + 4 + LANE_ROW * legend_row + LANE_ROW / 2
        symbol = (
            f'<path d="M{legend_x + 6},{ly + 7:.1f} L{legend_x + 6},{ly - 7:.1f} '
            f'L{legend_x + 14},{ly - 4:.1f} L{legend_x + 6},{ly - 1:.1f}" fill="{PHASE_COLOUR}" '
            f'stroke="{PHASE_COLOUR}"/>'
        )
        parts.append(entry("phase", symbol, "phase change", legend_x, ly + 4))
    return parts


def cluster_label(cluster: Sequence[PhaseMark]) -> str:
    return " → ".join(p.label for p in cluster)


def phase_clusters(phases: Sequence[PhaseMark], frame: Frame) -> list[list[PhaseMark]]:
    """Phase changes whose labels would overlap, together: one label after the last flag
    (e.g. "matched → active")."""
    clusters: list[list[PhaseMark]] = []
    for phase in sorted(phases, key=lambda p: p.position):
        if clusters:
            last = clusters[-1]
            room = frame.x(phase.position) - frame.x(last[-1].position)
            if room < len(cluster_label(last)) * 6 + 14:
                last.append(phase)
                continue
        clusters.append([phase])
    return clusters


def course_rows(sessions: Sequence[SessionMark], phases: Sequence[PhaseMark]) -> int:
    """How many rows the course lane takes, its legend included."""
    legend = len({m.status for m in sessions} & set(SESSION_MARKS)) + bool(phases)
    return max(1 + bool(phases), legend)
