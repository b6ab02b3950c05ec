"""What the simulated clinicians record about the alerts they receive (issue 17): a coded action
from the site's list (analytics' default codes), with some probability and after some delay.

Each alert kind has the action a clinician would most often take (a rupture is discussed in
session, a client off track gets a changed approach, a risk a safety plan …); now and then the
clinician judges it a false alarm. Most alerts are acted on before the next session (the
delay 0: recorded the week it arrived), the rest after it (the week after). A repair is good
news: nobody acts on it. Risk is always acted on.

The draw is the run's seed with the episode's client, the kind and the week: the same network
records the same actions in every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

# The action a clinician takes for each kind (codes of the site's list).
ACTION_FOR_KIND: Final[dict[str, str]] = {
    "risk": "safety_plan",
    "low_alliance": "discussed_in_session",
    "early_alliance_risk": "discussed_in_session",
    "rupture": "discussed_in_session",
    "unresolved_rupture": "changed_approach",
    "split_alliance": "involved_significant_other",
    "rating_discrepancy": "discussed_in_session",
    "deterioration": "changed_approach",
    "not_on_track": "changed_approach",
    "dropout_risk": "discussed_in_session",
    "rematch_suggested": "offered_rematch",
    "goals_not_progressing": "adjusted_goals",
    "low_support": "involved_significant_other",
    "missed_sessions": "discussed_in_session",
    "no_contact": "discussed_in_session",
}
FALSE_ALARM: Final = "no_action_needed_false_alarm"
ACTED_ON: Final = 0.7  # share of (non-risk) alerts a clinician records an action on
FALSE_ALARMS: Final = 0.05  # share of the actions that say "no action needed: false alarm"
BEFORE_NEXT_SESSION: Final = 0.6  # share of the actions recorded before the next session


@dataclass(frozen=True)
class PlannedAction:
    code: str
    delay_weeks: int  # 0: before the next session; 1: after it


def plan_action(seed: int, client_id: str, kind: str, week: int) -> PlannedAction | None:
    """The action a clinician records about an alert of ``kind`` received in ``week`` for
    ``client_id``'s episode, if any."""
    usual = ACTION_FOR_KIND.get(kind)
    if usual is None:  # a repair, or a kind this simulator does not know
        return None
    draw = random.Random(f"{seed}:action:{client_id}:{kind}:{week}")
    if kind != "risk" and draw.random() >= ACTED_ON:
        return None
    code = FALSE_ALARM if kind != "risk" and draw.random() < FALSE_ALARMS else usual
    return PlannedAction(code, 0 if draw.random() < BEFORE_NEXT_SESSION else 1)
