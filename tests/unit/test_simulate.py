"""The network simulator (rapport.simulate), its counterfactual arms (rapport.simulate_arms) and
the demo's attendance figures (rapport.simulate_attendance):
deterministic by seed, the behaviours the literature describes, and effect sizes that come
from the simulated clients (change an assumption and they change)."""

from __future__ import annotations

import json
import math

import pytest

from rapport import simulate, simulate_attendance
from rapport.simulate import ClientOutcome, Course, build_network, first_available
from rapport.simulate_arms import (
    NO_CLIENT_DIFFERED,
    TOO_FEW_EVENTS,
    compare,
    paired_mean,
    run_arm,
    sessions,
    wilson,
)
from rapport.simulate_live import LiveRun

RUPTURE_KINDS = frozenset({"rupture"})


def _walk(course: Course, alerts_for: frozenset[str] = frozenset(), sessions: int = 16) -> Course:
    for _ in range(sessions):
        received = alerts_for if course.rupture_depth > 0 else frozenset()
        if course.session(received).ended:
            break
    return course


def test_the_same_seed_draws_the_same_network_and_the_same_sessions() -> None:
    a, b = build_network(seed=3, clients=40), build_network(seed=3, clients=40)
    assert a == b
    first = [_walk(Course(3, c, a.therapists[0])).history for c in a.clients]
    again = [_walk(Course(3, c, b.therapists[0])).history for c in b.clients]
    assert first == again


def test_another_seed_draws_another_network() -> None:
    assert build_network(seed=3, clients=40).clients != build_network(seed=4, clients=40).clients


def test_therapists_are_registered_without_their_hidden_traits() -> None:
    record = (
        build_network(seed=1, clients=10, therapists=3, sites=1).therapists[0].registry_record()
    )
    assert not {"effect", "alliance_skill", "repair_skill"} & set(record)
    assert record["sites"] == ["site-1"]


def test_a_couple_intake_names_the_partner() -> None:
    network = build_network(seed=2, clients=300)
    couple = next(c for c in network.clients if c.couple)
    body = couple.intake_request()
    assert body["unit"] == "couple"
    assert body["members"] == [{"reference": couple.partner_reference, "role": "partner"}]


@pytest.fixture(scope="module")
def population() -> simulate.Network:
    return build_network(seed=11, sites=3, therapists=30, clients=1500, weeks=40)


def test_ruptures_are_repaired_more_often_when_the_therapist_gets_the_alert(
    population: simulate.Network,
) -> None:
    told = unseen = ruptured = 0
    for n, client in enumerate(population.clients):
        therapist = population.therapists[n % len(population.therapists)]
        with_alert = _walk(Course(11, client, therapist), RUPTURE_KINDS)
        without = _walk(Course(11, client, therapist))
        ruptured += with_alert.ruptures > 0
        told += with_alert.repairs
        unseen += without.repairs
    assert ruptured > 200
    assert told > 1.3 * unseen


def test_drop_out_is_more_likely_after_a_low_early_alliance(
    population: simulate.Network,
) -> None:
    outcomes = {True: [0, 0], False: [0, 0]}
    for client in population.clients:
        course = _walk(Course(11, client, population.therapists[0]), sessions=20)
        outcomes[course.early_low][0] += course.ended == "dropped_out"
        outcomes[course.early_low][1] += 1
    low_rate = outcomes[True][0] / outcomes[True][1]
    other_rate = outcomes[False][0] / outcomes[False][1]
    assert outcomes[True][1] > 100
    assert low_rate > 1.5 * other_rate


def test_some_couples_split_and_some_clients_deteriorate(population: simulate.Network) -> None:
    couples = [c for c in population.clients if c.couple]
    splits = sum(_walk(Course(11, c, population.therapists[0])).splits > 0 for c in couples)
    assert 0.1 < splits / len(couples) < 0.6
    share = sum(c.deteriorating for c in population.clients) / len(population.clients)
    assert 0.04 < share < 0.12


def test_first_available_keeps_language_couples_and_capacity() -> None:
    network = build_network(seed=5, sites=2, therapists=6, clients=120)
    chosen = first_available(network)
    load: dict[str, int] = {}
    for client in network.clients:
        if client.id not in chosen:
            continue
        therapist = network.therapist(chosen[client.id])
        assert therapist.site_id == client.site_id
        assert client.language in therapist.languages
        assert not client.couple or "couples" in therapist.scopes
        load[therapist.id] = load.get(therapist.id, 0) + 1
    assert all(load[t] <= network.therapist(t).capacity for t in load)


def test_wilson_interval_of_a_half() -> None:
    rate = wilson(5, 10)
    assert math.isclose(rate.low, 0.2366, abs_tol=1e-4)
    assert math.isclose(rate.high, 0.7634, abs_tol=1e-4)


def test_paired_mean_interval() -> None:
    mean, low, high = paired_mean([1.0, 0.0, 1.0, 0.0])
    half = 1.959964 * math.sqrt((4 * 0.25) / 3 / 4)
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half))


def _outcome(client: str, **flags: bool) -> ClientOutcome:
    base = {
        "dropped_out": False,
        "reliable_improvement": False,
        "recovered": False,
        "deteriorated": False,
    }
    return ClientOutcome(
        client, "th", 8, ors_change=0.0, ruptures=0, repairs=0, **{**base, **flags}
    )


def test_a_comparison_pairs_the_same_clients() -> None:
    a = [_outcome("c1", recovered=True), _outcome("c2", recovered=True), _outcome("c3")]
    b = [_outcome("c1"), _outcome("c2", recovered=True), _outcome("c4", recovered=True)]
    comparison = compare("t", "A", a, "B", b)
    recovered = comparison.differences[0]
    assert comparison.n == 2
    assert (recovered.a.count, recovered.b.count) == (2, 1)
    assert recovered.estimate == pytest.approx(0.5)


@pytest.mark.parametrize(("events", "interval"), [(4, False), (5, True)])
def test_a_difference_has_an_interval_only_with_five_events_in_each_arm(
    events: int, interval: bool
) -> None:
    # Arm A: the first `events` clients recovered; arm B: the next `events` (all discordant).
    a = [_outcome(f"c{i}", recovered=i < events) for i in range(20)]
    b = [_outcome(f"c{i}", recovered=events <= i < 2 * events) for i in range(20)]
    recovered = compare("t", "A", a, "B", b).differences[0]
    assert recovered.estimate == 0.0
    if interval:
        assert recovered.low is not None and recovered.high is not None
        assert recovered.low < 0.0 < recovered.high and recovered.note == ""
    else:
        assert (recovered.low, recovered.high, recovered.note) == (None, None, TOO_FEW_EVENTS)


def test_an_arm_with_no_events_has_no_interval_not_a_zero_one() -> None:
    a = [_outcome(f"c{i}") for i in range(24)]
    recovered = compare("t", "A", a, "B", list(a)).differences[0]
    assert (recovered.estimate, recovered.low, recovered.high) == (0.0, None, None)
    assert recovered.note == TOO_FEW_EVENTS


def test_every_client_alike_in_both_arms_has_no_interval_and_says_so() -> None:
    a = [_outcome(f"c{i}", recovered=i < 10) for i in range(20)]
    recovered = compare("t", "A", a, "B", list(a)).differences[0]
    assert (recovered.low, recovered.high, recovered.note) == (None, None, NO_CLIENT_DIFFERED)


def test_paired_mean_without_variation_or_pairs_has_no_interval() -> None:
    assert paired_mean([0.0, 0.0, 0.0]) == (0.0, None, None)
    assert paired_mean([2.0]) == (2.0, None, None)
    assert paired_mean([]) == (0.0, None, None)


def test_the_effect_of_alerts_comes_from_the_simulated_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    network = build_network(seed=9, sites=2, therapists=8, clients=160, weeks=16)
    assignment = first_available(network)

    def effect() -> tuple[float, int]:
        on = run_arm(network, assignment, alerts_on=True)
        off = run_arm(network, assignment, alerts_on=False)
        comparison = compare("alerts", "on", on, "off", off)
        return comparison.ors_difference[0], sum(o.repairs for o in on) - sum(
            o.repairs for o in off
        )

    ors_effect, extra_repairs = effect()
    assert extra_repairs > 0
    # A world where alerts change nothing the therapist does: no difference at all.
    monkeypatch.setattr(simulate, "REPAIR_SEEN", simulate.REPAIR_UNSEEN)
    monkeypatch.setattr(simulate, "SPLIT_MEND_SEEN", simulate.SPLIT_MEND_UNSEEN)
    monkeypatch.setattr(simulate, "CHANGE_COURSE_SEEN", simulate.CHANGE_COURSE_UNSEEN)
    monkeypatch.setattr(simulate, "DROPOUT_ADDRESSED", 1.0)
    assert effect() == (0.0, 0)
    assert ors_effect != 0.0


def test_offline_arm_records_are_in_the_replay_format() -> None:
    network = build_network(seed=4, sites=1, therapists=3, clients=12, weeks=6)
    records: list[dict[str, object]] = []
    run_arm(network, first_available(network), alerts_on=True, records=records)
    assert records
    first = records[0]
    assert set(first) == {
        "episode_id",
        "site_id",
        "therapist_id",
        "session",
        "at",
        "respondent",
        "respondent_id",
        "instrument",
        "items",
    }
    json.dumps(records)


def test_the_demo_counts_the_drop_outs_the_attendance_alerts_caught_and_how_early() -> None:
    """Every course laid out as a diary and replayed on the replay's clock: no_contact falls due
    21 site-local days after the last contact, the drop-out 28, so each drop-out is caught, 7
    days before (no contact) or 14 (its next two weekly sessions missed)."""
    network = build_network(seed=7, clients=150, weeks=16)
    live = LiveRun()
    for step in sessions(network, first_available(network), alerts_on=False, with_lines=False):
        live.courses[step.episode_id] = step.course

    figures = simulate_attendance.figures(network, live)

    courses = list(live.courses.values())
    assert figures.dropouts == sum(c.ended == "dropped_out" for c in courses) >= 10
    assert figures.statuses["attended"] == sum(c.session_number for c in courses)
    assert figures.statuses["missed"] > 0 and figures.missed_sessions_alerts > 0
    assert figures.booked == sum(figures.statuses.values())
    assert figures.caught == figures.dropouts
    assert set(figures.days_before) == {7, 14}
    assert figures.caught_by["missed_sessions"] == figures.days_before.count(14)
    summary = figures.to_json()
    assert summary["days_before_dropout_min"] == 7
    assert summary["days_before_dropout_max"] == 14
