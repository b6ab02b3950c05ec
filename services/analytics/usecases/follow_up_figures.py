"""A site's follow-up figures: what followed each coded action on its alerts (resolution within
2 and 4 sessions, the change in alliance and outcome), per site and per therapist; the open
alerts nobody acted on, by age; the median time to a first action. Reads the site's rows and
hands them to the pure rules (``domain.followup_figures``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.domain.followup_figures import (
    ActionCase,
    follow_up_figures,
    median_hours_to_first_action,
    on_scale,
    session_at,
    unacted_by_age,
)
from services.analytics.mapping import FollowUpOut, action_figures_out
from services.analytics.models import (
    AnalyticsAlert,
    AnalyticsAlertAction,
    AnalyticsEpisode,
    AnalyticsScore,
)

# What an instrument measures, for these figures: the alliance, or the outcome (symptoms too).
CONSTRUCT = {"alliance": "alliance", "outcome": "outcome", "symptom": "outcome"}
Series = dict[str, dict[str, dict[int, float]]]  # episode → "alliance"/"outcome" → session → 0–100


async def client_series(
    deps: AnalyticsDependencies, session: AsyncSession, site_id: str, episodes: set[str]
) -> tuple[Series, dict[str, list[tuple[int, datetime]]]]:
    """Each episode's client alliance and outcome by session (the mean of its instruments on a
    0–100 scale, higher better), and when each session's responses were recorded."""
    rows = (
        await session.exec(
            select(AnalyticsScore).where(
                AnalyticsScore.site_id == site_id,
                col(AnalyticsScore.episode_id).in_(episodes),
            )
        )
    ).all()
    sums: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    recorded: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    for row in rows:
        recorded[row.episode_id].append((row.session_number, row.recorded_at))
        instrument = deps.instruments.get(row.instrument)
        if row.respondent_role != "client" or instrument is None:
            continue
        if instrument.kind not in CONSTRUCT:
            continue
        value = on_scale(
            float(row.total),
            float(instrument.total_min),
            float(instrument.total_max),
            instrument.higher_is_better,
        )
        sums[(row.episode_id, CONSTRUCT[instrument.kind], row.session_number)].append(value)
    series: Series = defaultdict(lambda: {"alliance": {}, "outcome": {}})
    for (episode_id, construct, number), values in sums.items():
        series[episode_id][construct][number] = sum(values) / len(values)
    return series, recorded


def first_actions(
    actions: Sequence[AnalyticsAlertAction],
) -> dict[tuple[str, str], AnalyticsAlertAction]:
    """The first recording of each code on each alert."""
    first: dict[tuple[str, str], AnalyticsAlertAction] = {}
    for action in sorted(actions, key=lambda a: a.recorded_at):
        first.setdefault((action.alert_id, action.code), action)
    return first


async def follow_up_at_site(
    deps: AnalyticsDependencies, session: AsyncSession, site_id: str, now: datetime
) -> FollowUpOut:
    alerts = {
        a.id: a
        for a in (
            await session.exec(select(AnalyticsAlert).where(AnalyticsAlert.site_id == site_id))
        ).all()
    }
    actions = (
        await session.exec(
            select(AnalyticsAlertAction).where(AnalyticsAlertAction.site_id == site_id)
        )
    ).all()
    acted = {a.alert_id for a in actions}
    episodes = {a.episode_id for a in actions}
    last_session = dict(
        (
            await session.exec(
                select(AnalyticsEpisode.episode_id, AnalyticsEpisode.last_session).where(
                    AnalyticsEpisode.site_id == site_id,
                    col(AnalyticsEpisode.episode_id).in_(episodes),
                )
            )
        ).all()
    )
    series, recorded = await client_series(deps, session, site_id, episodes)
    cases = []
    for (alert_id, code), action in first_actions(actions).items():
        alert = alerts.get(alert_id)
        if alert is None:
            continue
        at_action = session_at(recorded.get(alert.episode_id, []), action.recorded_at)
        action_session = max(at_action or alert.opened_session, alert.opened_session)
        cases.append(
            ActionCase(
                site_id=site_id,
                therapist_id=alert.therapist_id,
                code=code,
                action_session=action_session,
                resolved_session=alert.resolved_session,
                last_session=max(last_session.get(alert.episode_id, 0), action_session),
                alliance=series[alert.episode_id]["alliance"],
                outcome=series[alert.episode_id]["outcome"],
            )
        )
    first_action_at: dict[str, datetime] = {}
    for action in actions:
        earlier = first_action_at.get(action.alert_id)
        if earlier is None or action.recorded_at < earlier:
            first_action_at[action.alert_id] = action.recorded_at
    return FollowUpOut(
        site_id=site_id,
        actions=[action_figures_out(f) for f in follow_up_figures(cases)],
        open_unacted_by_age=unacted_by_age(
            (a.opened_at for a in alerts.values() if a.status == "open" and a.id not in acted),
            now,
        ),
        alerts_acted_on=len(first_action_at),
        median_hours_to_first_action=median_hours_to_first_action(
            (alerts[i].opened_at, at) for i, at in first_action_at.items() if i in alerts
        ),
    )
