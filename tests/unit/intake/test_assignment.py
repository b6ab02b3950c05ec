"""Batch waiting-list assignment: exact (most clients placed, then the highest total score),
checked against two independent methods on random instances — brute force on tiny ones and
SciPy's dense linear_sum_assignment on the capacity-expanded matrix — with eligibility and
scores taken one pair at a time from the public ``hard_constraints`` and ``score``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from services.intake.domain.assignment import assign, match_graph
from services.intake.domain.matching import (
    EffectivenessTable,
    Intake,
    MatchingConfig,
    Therapist,
    hard_constraints,
    score,
)
from tests.unit.intake.builders import (
    NOW,
    intake,
    preferences,
    preferred,
    random_network,
    therapist,
)

CONFIG = MatchingConfig()


def pair_scores(
    intakes: Sequence[Intake], people: Sequence[Therapist], effects: EffectivenessTable
) -> dict[tuple[int, int], int]:
    """Eligible (client, therapist) pairs and their milli-points, one pair at a time."""
    return {
        (c, t): round(score(client, who, effects, CONFIG, NOW).total * 1000)
        for c, client in enumerate(intakes)
        for t, who in enumerate(people)
        if not hard_constraints(client, who, CONFIG)
    }


def brute_force(
    scores: dict[tuple[int, int], int], clients: int, places: list[int]
) -> tuple[int, int]:
    """(placed, total) of the lexicographic optimum by trying every assignment."""
    options = [[t for (c2, t) in scores if c2 == c] for c in range(clients)]
    best = (0, 0)

    def walk(c: int, placed: int, total: int) -> None:
        nonlocal best
        if c == clients:
            best = max(best, (placed, total))
            return
        walk(c + 1, placed, total)
        for t in options[c]:
            if places[t] > 0:
                places[t] -= 1
                walk(c + 1, placed + 1, total + scores[(c, t)])
                places[t] += 1

    walk(0, 0, 0)
    return best


def dense_reference(
    scores: dict[tuple[int, int], int], clients: int, places: list[int]
) -> tuple[int, int]:
    """(placed, total) by SciPy's linear_sum_assignment on the dense capacity-expanded matrix;
    a placement is worth more than any difference in total score."""
    if not scores:
        return (0, 0)
    low = min(scores.values())
    high = max(scores.values()) - low + 1
    one_more = clients * high + 1
    columns = [t for t, p in enumerate(places) for _ in range(p)]
    width = max(len(columns), clients)
    value = np.zeros((clients, width))
    for (c, t), s in scores.items():
        for k, owner in enumerate(columns):
            if owner == t:
                value[c, k] = one_more + s - low + 1
    rows, cols = linear_sum_assignment(value, maximize=True)
    chosen = [(int(r), columns[int(k)]) for r, k in zip(rows, cols, strict=True) if value[r, k] > 0]
    return len(chosen), sum(scores[p] for p in chosen)


def check_invariants(
    intakes: Sequence[Intake], people: Sequence[Therapist], result: object
) -> None:
    """Capacities never exceeded, every placement eligible, every waiting reason true."""
    by_id = {t.id: t for t in people}
    clients = {i.client: i for i in intakes}
    load = Counter(p.therapist_id for p in result.placements)  # type: ignore[attr-defined]
    for therapist_id, count in load.items():
        assert count <= by_id[therapist_id].capacity_left
    placed = {p.client for p in result.placements}  # type: ignore[attr-defined]
    assert len(placed) == len(result.placements)  # type: ignore[attr-defined]
    for p in result.placements:  # type: ignore[attr-defined]
        assert hard_constraints(clients[p.client], by_id[p.therapist_id], CONFIG) == []
    for u in result.unplaced:  # type: ignore[attr-defined]
        eligible = [t for t in people if not hard_constraints(clients[u.client], t, CONFIG)]
        assert u.eligible == len(eligible)
        if u.reason == "no_eligible_therapist":
            assert eligible == []
            assert sum(e.excluded for e in u.exclusions) >= len(people)
        else:
            assert eligible and all(load[t.id] == t.capacity_left for t in eligible)
    assert placed | {u.client for u in result.unplaced} == set(clients)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(40))
def test_the_optimum_equals_brute_force_on_tiny_instances(seed: int) -> None:
    intakes, people, records = random_network(seed, clients=6, therapists=4, max_places=1)
    effects = EffectivenessTable(records)
    result = assign(intakes, people, effects, CONFIG, NOW)
    scores = pair_scores(intakes, people, effects)
    expected = brute_force(scores, len(intakes), [t.capacity_left for t in people])
    assert (len(result.placements), result.total_millis) == expected
    check_invariants(intakes, people, result)


@pytest.mark.parametrize("seed", range(100, 135))
def test_the_optimum_equals_the_dense_assignment_reference(seed: int) -> None:
    intakes, people, records = random_network(seed, clients=24, therapists=9)
    effects = EffectivenessTable(records)
    result = assign(intakes, people, effects, CONFIG, NOW)
    scores = pair_scores(intakes, people, effects)
    expected = dense_reference(scores, len(intakes), [t.capacity_left for t in people])
    assert (len(result.placements), result.total_millis) == expected
    assert result.total_score == pytest.approx(result.total_millis / 1000)
    check_invariants(intakes, people, result)


def test_the_random_instances_include_clients_nobody_may_see_and_full_therapists() -> None:
    reasons: Counter[str] = Counter()
    for seed in range(100, 135):
        intakes, people, records = random_network(seed, clients=24, therapists=9)
        result = assign(intakes, people, records, CONFIG, NOW)
        reasons.update(u.reason for u in result.unplaced)
    assert reasons["no_eligible_therapist"] > 0 and reasons["capacity_exhausted"] > 0


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    clients=st.integers(0, 30),
    therapists=st.integers(0, 12),
    max_places=st.integers(1, 5),
)
def test_capacities_are_never_exceeded_and_every_reason_is_true(
    seed: int, clients: int, therapists: int, max_places: int
) -> None:
    intakes, people, records = random_network(seed, clients, therapists, max_places)
    result = assign(intakes, people, records, CONFIG, NOW)
    check_invariants(intakes, people, result)


def test_placing_one_more_client_beats_a_higher_total() -> None:
    # th-1 is the better match for both, but only the first client may also see th-2.
    people = [
        therapist("th-1", capacity=1, caseload=0, domains=frozenset({"depression"})),
        therapist("th-2", capacity=1, caseload=0, domains=frozenset(), gender="man"),
    ]
    flexible = intake(client="p1_" + "1" * 32)
    strict = intake(
        client="p1_" + "2" * 32,
        preferences=preferences(gender=preferred("woman")),
        excluded_therapists=frozenset({"th-2"}),
    )
    result = assign([flexible, strict], people, [], CONFIG, NOW)
    assert {(p.client, p.therapist_id) for p in result.placements} == {
        (flexible.client, "th-2"),
        (strict.client, "th-1"),
    }
    assert result.unplaced == ()


def test_a_client_nobody_may_see_waits_with_the_constraints_that_excluded_everyone() -> None:
    people = [therapist("th-1"), therapist("th-2")]
    spanish = intake(languages=frozenset({"es"}))
    result = assign([spanish], people, [], CONFIG, NOW)
    (waiting,) = result.unplaced
    assert waiting.reason == "no_eligible_therapist"
    assert "language excluded 2 (2 for that reason alone)" in waiting.detail


def test_a_client_whose_therapists_are_all_taken_waits_for_capacity() -> None:
    people = [therapist("th-1", capacity=1, caseload=0)]
    first, second = intake(client="p1_" + "1" * 32), intake(client="p1_" + "2" * 32)
    result = assign([first, second], people, [], CONFIG, NOW)
    assert len(result.placements) == 1
    (waiting,) = result.unplaced
    assert waiting.reason == "capacity_exhausted" and waiting.eligible == 1
    assert waiting.detail.startswith("All 1 eligible therapist(s) are full")


def test_each_client_is_scored_with_its_site_config() -> None:
    both = frozenset({"site-a", "site-b"})
    people = [
        therapist("th-1", capacity=1, caseload=0, gender="man", sites=both),
        therapist("th-2", capacity=1, caseload=0, domains=frozenset({"grief"}), sites=both),
    ]
    prefers_man = preferences(gender=preferred("man"))
    a = intake(client="p1_" + "1" * 32, site="site-a", preferences=prefers_man)
    b = intake(client="p1_" + "2" * 32, site="site-b")
    # With one config, th-1 (a man who lists depression) goes to the client who prefers a man.
    same = assign([a, b], people, [], CONFIG, NOW)
    assert {(p.client, p.therapist_id) for p in same.placements} == {
        (a.client, "th-1"),
        (b.client, "th-2"),
    }
    # Site b weighs specialty twenty-fold: its client's gain outweighs the other's loss.
    site_b = MatchingConfig.for_site({"weights": {"specialty": 20.0}})
    weighted = assign([a, b], people, [], CONFIG, NOW, site_configs={"site-b": site_b})
    assert {(p.client, p.therapist_id) for p in weighted.placements} == {
        (a.client, "th-2"),
        (b.client, "th-1"),
    }


def test_a_client_may_appear_once_in_a_batch() -> None:
    with pytest.raises(ValueError, match="once"):
        assign([intake(), intake()], [therapist()], [], CONFIG, NOW)


def test_an_empty_waiting_list_or_registry_assigns_nobody() -> None:
    empty = assign([], [therapist()], [], CONFIG, NOW)
    assert empty.placements == () and empty.unplaced == () and empty.total_score == 0
    nobody = assign([intake()], [], [], CONFIG, NOW)
    assert nobody.unplaced[0].reason == "no_eligible_therapist"


def test_the_graph_holds_only_eligible_pairs() -> None:
    intakes, people, records = random_network(7, clients=10, therapists=6)
    graph = match_graph(intakes, people, records, CONFIG, NOW)
    effects = EffectivenessTable(records)
    assert graph.pairs == len(pair_scores(intakes, people, effects))
