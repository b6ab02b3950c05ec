"""Builders for the matching tests: a therapist and an intake that meet every hard constraint
of each other unless a test says otherwise, and random small networks for the batch tests."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from services.intake.domain.matching import (
    Effectiveness,
    Estimate,
    Intake,
    Preference,
    Preferences,
    ProblemDomain,
    Therapist,
    TimePreference,
    WeeklySlot,
)

# Monday 2 March 2026, 09:00 local time.
NOW = datetime(2026, 3, 2, 9, 0)
CLIENT = "p1_" + "a" * 32
WEEKDAY_MORNINGS = tuple(WeeklySlot(day, 9 * 60, 12 * 60) for day in range(5))


def therapist(id: str = "th-1", **changes: Any) -> Therapist:
    base = Therapist(
        id=id,
        sites=frozenset({"site-a"}),
        languages=frozenset({"en"}),
        capacity=10,
        caseload=2,
        gender="woman",
        modalities=frozenset({"cbt"}),
        scopes=frozenset({"adults"}),
        domains=frozenset({"depression"}),
        telehealth=False,
        availability=WEEKDAY_MORNINGS,
        years_experience=5.0,
    )
    return replace(base, **changes)


def intake(**changes: Any) -> Intake:
    base = Intake(
        client=CLIENT,
        site="site-a",
        domains=(ProblemDomain("depression", "moderate"),),
        languages=frozenset({"en"}),
    )
    return replace(base, **changes)


def preferences(**kinds: Any) -> Preferences:
    return Preferences(**kinds)


def required(*codes: str) -> Preference:
    return Preference.required(*codes)


def preferred(*codes: str) -> Preference:
    return Preference.preferred(*codes)


def windows(strength: str, *slots: tuple[int, int, int]) -> TimePreference:
    return TimePreference(tuple(WeeklySlot(*s) for s in slots), strength)  # type: ignore[arg-type]


def record(
    therapist_id: str,
    domain: str,
    improvement: float,
    n: int = 30,
    classification: str = "neutral",
    deterioration: float | None = None,
) -> Effectiveness:
    return Effectiveness(
        therapist_id=therapist_id,
        domain=domain,
        n=n,
        classification=classification,  # type: ignore[arg-type]
        reliable_improvement_rate=Estimate(improvement, improvement - 0.1, improvement + 0.1),
        deterioration_rate=(
            None
            if deterioration is None
            else Estimate(deterioration, deterioration - 0.05, deterioration + 0.05)
        ),
    )


# --- Random small networks (batch tests) ------------------------------------------------------

SITES = ("site-a", "site-b", "site-c")
DOMAINS = ("depression", "anxiety", "trauma", "eating", "grief")


def random_network(
    seed: int, clients: int, therapists: int, max_places: int = 3
) -> tuple[list[Intake], list[Therapist], list[Effectiveness]]:
    """A small network with enough constraints that some clients have nobody eligible and some
    therapists are wanted by many."""
    rng = random.Random(seed)
    roster = []
    for k in range(therapists):
        capacity = rng.randint(1, max_places + 2)
        roster.append(
            Therapist(
                id=f"th-{k:03d}",
                sites=frozenset(rng.sample(SITES, rng.choice([1, 1, 2]))),
                languages=frozenset({"en"} | ({"es"} if rng.random() < 0.3 else set())),
                capacity=capacity,
                caseload=rng.randint(0, min(capacity, 2)),
                gender=rng.choice(["woman", "man"]),
                modalities=frozenset(rng.sample(["cbt", "act", "emdr", "psychodynamic"], 2)),
                scopes=frozenset(
                    {"adults"}
                    | {s for s in ("trauma", "eating_disorders", "couples") if rng.random() < 0.4}
                ),
                domains=frozenset(rng.sample(DOMAINS, rng.randint(1, 3))),
                telehealth=rng.random() < 0.4,
                availability=tuple(
                    WeeklySlot(day, rng.choice([8, 9, 13]) * 60, rng.choice([12, 17, 19]) * 60)
                    for day in sorted(rng.sample(range(5), rng.randint(1, 4)))
                ),
                years_experience=float(rng.randint(0, 25)),
                active=rng.random() > 0.05,
                accepts_new_clients_from=(
                    date(2026, 3, rng.randint(3, 20)) if rng.random() < 0.15 else None
                ),
            )
        )
    intakes = []
    for k in range(clients):
        domains = rng.sample(DOMAINS, rng.randint(1, 2))
        prefs = Preferences(
            gender=(
                Preference(
                    frozenset({rng.choice(["woman", "man"])}), rng.choice(["required", "preferred"])
                )
                if rng.random() < 0.4
                else None
            ),
            format=(
                Preference(
                    frozenset({rng.choice(["in_person", "telehealth"])}),
                    rng.choice(["required", "preferred"]),
                )
                if rng.random() < 0.5
                else None
            ),
            times=(
                TimePreference(
                    (WeeklySlot(rng.randrange(5), 9 * 60, 12 * 60),),
                    rng.choice(["required", "preferred"]),
                )
                if rng.random() < 0.3
                else None
            ),
        )
        intakes.append(
            Intake(
                client=f"p1_{k:032x}",
                site=rng.choice(SITES),
                domains=tuple(
                    ProblemDomain(d, rng.choice(["mild", "moderate", "severe"])) for d in domains
                ),
                languages=frozenset({"es"}) if rng.random() < 0.15 else frozenset({"en"}),
                risk=rng.random() < 0.2,
                unit="couple" if rng.random() < 0.1 else "individual",
                preferences=prefs,
                difficult_past_relationships=rng.random() < 0.2,
            )
        )
    records = [
        Effectiveness(
            therapist_id=t.id,
            domain=d,
            n=(n := rng.randint(0, 40)),
            classification=(
                "not_enough_data" if n < 15 else rng.choice(["effective", "neutral", "ineffective"])
            ),
            reliable_improvement_rate=Estimate(p := rng.uniform(0.3, 0.7), p - 0.1, p + 0.1),
        )
        for t in roster
        for d in DOMAINS
        if rng.random() < 0.6
    ]
    return intakes, roster, records
