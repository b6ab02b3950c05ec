"""Matching benchmark (issue 3, Performance): the matching engine in-process on a simulated
counselling network, deterministic by seed. Prints one JSON object.

    .venv/bin/python bench/matching_bench.py [--seed 7] [--proposals 1000] [--quick]

* **proposal**: one ``propose`` against a registry of 10,000 therapists, p50/p99/max ms over
  ``--proposals`` intakes (registry and effectiveness indexes built once, as the service does);
* **batch**: ``assign`` of 5,000 waiting clients to 2,000 therapists with 1–5 places left each:
  seconds (scoring the eligible pairs, solving), the objective, and the objective of an
  independent exact reference on the same eligible pairs and scores — SciPy's
  ``linear_sum_assignment`` (a dense shortest-augmenting-path solver) on the dense
  capacity-expanded matrix — plus the same on 1,000 × 400; the greedy baseline (each client in
  turn takes their best therapist with a place left) shows what exactness buys. Clients share
  a few common time-window patterns (as waiting lists do), which the engine memoises; the
  ``batch_distinct_windows`` run gives every client their own pattern (the worst case);
* **quality**: a network whose therapists have hidden per-domain effects on the probability of
  reliable improvement; analytics-like shrunken estimates (empirical Bayes, classified only with
  n >= 15 and an interval that excludes the reference) come from simulated past outcomes. The
  expected improvement of an assignment is the mean hidden probability over each client's
  problem domains. Printed: the engine (clients arrive one by one and take the top option; and
  the batch assignment) against random assignment among eligible therapists and against "first
  available" (the eligible therapist with the earliest session), as ratios, with an oracle that
  knows the hidden effects for scale.

The machine's two cores are shared with whatever else runs; absolute times are a floor.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scipy.optimize import linear_sum_assignment

from services.intake.domain.assignment import MatchGraph, assign, match_graph, solve
from services.intake.domain.matching import (
    DomainReference,
    Effectiveness,
    EffectivenessTable,
    Estimate,
    Intake,
    MatchingConfig,
    Preference,
    Preferences,
    ProblemDomain,
    Roster,
    Therapist,
    TimePreference,
    WeeklySlot,
    eligibility,
    propose,
)

NOW = datetime(2026, 3, 2, 9, 30)  # a Monday morning
SITES = [f"site-{k:02d}" for k in range(1, 13)]
DOMAINS = [
    ("depression", 0.22, 0.50),  # (code, share of client problems, base improvement rate)
    ("anxiety", 0.22, 0.55),
    ("trauma", 0.10, 0.45),
    ("relationship", 0.09, 0.50),
    ("grief", 0.05, 0.55),
    ("work_functioning", 0.06, 0.55),
    ("sleep", 0.04, 0.50),
    ("substance_use", 0.05, 0.35),
    ("eating", 0.03, 0.40),
    ("suicidality", 0.03, 0.40),
    ("social_conflict", 0.06, 0.50),
    ("ocd", 0.03, 0.45),
    ("psychosis", 0.02, 0.30),
]
DOMAIN_CODES = [d[0] for d in DOMAINS]
DOMAIN_SHARE = np.array([d[1] for d in DOMAINS]) / sum(d[1] for d in DOMAINS)
BASE_RATE = {d[0]: d[2] for d in DOMAINS}
MODALITIES = ["cbt", "act", "dbt", "emdr", "psychodynamic", "person_centred", "systemic", "ipt"]
BACKGROUNDS = ["muslim", "christian", "jewish", "hindu", "lgbtq", "latinx", "black", "asian"]
SCOPE_SHARE = {
    "adults": 0.92,
    "older_adults": 0.25,
    "children_adolescents": 0.25,
    "couples": 0.22,
    "family": 0.15,
    "trauma": 0.40,
    "eating_disorders": 0.12,
    "substance_use": 0.18,
    "psychosis": 0.08,
}
THERAPIST_EFFECT_SD = 0.06  # hidden between-therapist SD of the improvement probability
MIN_CASES = 15


class Network:
    """A simulated network: therapists, their hidden per-domain effects and the analytics-like
    estimates derived from their simulated past outcomes."""

    def __init__(self, seed: int, therapists: int, places: tuple[int, int]) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.therapists = [_therapist(rng, k, places) for k in range(therapists)]
        self.effect = rng.normal(0.0, THERAPIST_EFFECT_SD, size=(therapists, len(DOMAINS)))
        self.index = {t.id: k for k, t in enumerate(self.therapists)}
        self.records = self._estimates()

    def true_rate(self, therapist_id: str, domain: str) -> float:
        k = self.index[therapist_id]
        d = DOMAIN_CODES.index(domain)
        return float(np.clip(BASE_RATE[domain] + self.effect[k, d], 0.02, 0.98))

    def expected_improvement(self, intake: Intake, therapist_id: str) -> float:
        return sum(self.true_rate(therapist_id, d.code) for d in intake.domains) / len(
            intake.domains
        )

    def _estimates(self) -> list[Effectiveness]:
        """Past closed episodes per therapist × domain (more in listed domains), shrunk toward
        the domain mean (beta-binomial empirical Bayes with the known between-therapist
        variance), with a 95% interval and Match-trial classification."""
        rng = self.rng
        records = []
        for k, t in enumerate(self.therapists):
            for d, code in enumerate(DOMAIN_CODES):
                n = int(rng.poisson(22 if code in t.domains else 3))
                if n == 0:
                    continue
                base = BASE_RATE[code]
                p = float(np.clip(base + self.effect[k, d], 0.02, 0.98))
                improved = int(rng.binomial(n, p))
                prior = base * (1 - base) / THERAPIST_EFFECT_SD**2 - 1
                estimate = (improved + prior * base) / (n + prior)
                sd = math.sqrt(estimate * (1 - estimate) / (n + prior + 1))
                lower, upper = estimate - 1.96 * sd, estimate + 1.96 * sd
                if n < MIN_CASES:
                    classification = "not_enough_data"
                elif lower > base:
                    classification = "effective"
                elif upper < base:
                    classification = "ineffective"
                else:
                    classification = "neutral"
                records.append(
                    Effectiveness(
                        therapist_id=t.id,
                        domain=code,
                        n=n,
                        classification=classification,  # type: ignore[arg-type]
                        reliable_improvement_rate=Estimate(estimate, lower, upper),
                    )
                )
        return records

    def table(self) -> EffectivenessTable:
        reference = {code: DomainReference(improvement=BASE_RATE[code]) for code in DOMAIN_CODES}
        return EffectivenessTable(self.records, reference)


def _pick(rng: np.random.Generator, share: float) -> bool:
    return bool(rng.random() < share)


def _therapist(rng: np.random.Generator, k: int, places: tuple[int, int]) -> Therapist:
    sites = frozenset(rng.choice(SITES, size=1 if _pick(rng, 0.8) else 2, replace=False).tolist())
    languages = {"en"} if _pick(rng, 0.95) else set()
    for code, share in (("es", 0.15), ("ar", 0.05), ("fr", 0.04), ("zh", 0.03), ("pl", 0.03)):
        if _pick(rng, share):
            languages.add(code)
    if not languages:
        languages.add("es")
    scopes = frozenset(s for s, share in SCOPE_SHARE.items() if _pick(rng, share))
    domains = frozenset(
        rng.choice(DOMAIN_CODES, size=int(rng.integers(3, 8)), replace=False, p=DOMAIN_SHARE)
    )
    slots = []
    for day in sorted(rng.choice(5, size=int(rng.integers(3, 6)), replace=False).tolist()):
        if _pick(rng, 0.8):
            slots.append(WeeklySlot(day, 9 * 60, 13 * 60))
        if _pick(rng, 0.7):
            slots.append(WeeklySlot(day, 14 * 60, 18 * 60))
        if _pick(rng, 0.2):
            slots.append(WeeklySlot(day, 18 * 60, 20 * 60 + 30))
    if _pick(rng, 0.1):
        slots.append(WeeklySlot(5, 10 * 60, 14 * 60))
    capacity = int(rng.integers(places[0], places[1] + 1))
    return Therapist(
        id=f"th-{k:05d}",
        sites=sites,
        languages=frozenset(languages),
        capacity=capacity,
        caseload=0,
        gender=str(rng.choice(["woman", "man", "non_binary"], p=[0.65, 0.31, 0.04])),
        background=frozenset([str(rng.choice(BACKGROUNDS))]) if _pick(rng, 0.3) else frozenset(),
        modalities=frozenset(rng.choice(MODALITIES, size=int(rng.integers(2, 5)), replace=False)),
        scopes=scopes,
        domains=domains,
        telehealth=_pick(rng, 0.55),
        availability=tuple(slots),
        years_experience=float(np.round(rng.gamma(2.0, 5.0), 1)),
        accepts_new_clients_from=(
            (NOW + timedelta(days=int(rng.integers(1, 22)))).date() if _pick(rng, 0.1) else None
        ),
    )


def _strength(rng: np.random.Generator, required: float) -> Any:
    return "required" if _pick(rng, required) else "preferred"


def make_intake(rng: np.random.Generator, k: int, distinct_windows: bool = False) -> Intake:
    """A client; with ``distinct_windows`` every client's time windows start and end at their
    own minutes (no two share a pattern, so nothing is memoised across clients)."""
    count = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    codes = rng.choice(DOMAIN_CODES, size=count, replace=False, p=DOMAIN_SHARE).tolist()
    domains = tuple(
        ProblemDomain(c, str(rng.choice(["mild", "moderate", "severe"], p=[0.3, 0.5, 0.2])))  # type: ignore[arg-type]
        for c in codes
    )
    roll = rng.random()
    languages = (
        frozenset({"en"})
        if roll < 0.88
        else frozenset({"es", "en"})
        if roll < 0.92
        else frozenset({str(rng.choice(["es", "ar", "fr", "zh", "pl"]))})
    )
    age = str(
        rng.choice(["adult", "child", "adolescent", "older_adult"], p=[0.8, 0.05, 0.08, 0.07])
    )
    unit = str(rng.choice(["individual", "couple", "family"], p=[0.88, 0.08, 0.04]))
    if age in ("child", "adolescent") and unit == "couple":
        unit = "family"
    roll = rng.random()
    fmt = (
        Preference.required("in_person")
        if roll < 0.30
        else Preference.required("telehealth")
        if roll < 0.38
        else Preference.preferred("in_person")
        if roll < 0.58
        else None
    )
    times = None
    roll = rng.random()
    if distinct_windows:
        start = 8 * 60 + 5 * (k % 24)
        end = 16 * 60 + 5 * (k // 24 % 36)
        days = sorted(rng.choice(5, size=int(rng.integers(2, 5)), replace=False).tolist())
        times = TimePreference(
            tuple(WeeklySlot(int(d), start, end) for d in days),
            "required" if roll < 0.5 else "preferred",
        )
    elif roll < 0.6:
        windows = (
            tuple(WeeklySlot(d, 17 * 60, 21 * 60) for d in range(5))
            if _pick(rng, 0.3)
            else tuple(
                WeeklySlot(int(d), 9 * 60, 18 * 60)
                for d in sorted(rng.choice(5, size=int(rng.integers(1, 4)), replace=False))
            )
        )
        times = TimePreference(windows, "required" if roll < 0.35 else "preferred")
    prefs = Preferences(
        gender=(
            Preference(
                frozenset({str(rng.choice(["woman", "man"], p=[0.75, 0.25]))}), _strength(rng, 0.3)
            )
            if _pick(rng, 0.3)
            else None
        ),
        culture_faith=(
            Preference(frozenset({str(rng.choice(BACKGROUNDS))}), _strength(rng, 0.1))
            if _pick(rng, 0.08)
            else None
        ),
        modality=(
            Preference(frozenset({str(rng.choice(MODALITIES))}), _strength(rng, 0.1))
            if _pick(rng, 0.15)
            else None
        ),
        format=fmt,
        times=times,
    )
    return Intake(
        client=f"p1_{k:032x}",
        site=str(rng.choice(SITES)),
        domains=domains,
        languages=languages,
        risk=_pick(rng, 0.1),
        unit=unit,  # type: ignore[arg-type]
        age_group=age,  # type: ignore[arg-type]
        preferences=prefs,
        prior_therapy=_pick(rng, 0.4),
        difficult_past_relationships=_pick(rng, 0.15),
    )


# --- Proposal latency -------------------------------------------------------------------------


def bench_proposals(seed: int, count: int) -> dict[str, Any]:
    network = Network(seed, 10_000, (8, 30))
    rng = network.rng
    therapists = [
        replace(t, caseload=int(rng.integers(0, t.capacity + 1))) for t in network.therapists
    ]
    started = time.perf_counter()
    roster = Roster.build(therapists)
    table = network.table()
    table.aligned(roster)
    build_s = time.perf_counter() - started
    config = MatchingConfig()
    intakes = [make_intake(rng, k) for k in range(count)]
    for intake in intakes[:20]:  # warm-up
        propose(intake, roster, table, config, NOW)
    times = []
    statuses: dict[str, int] = {}
    eligible = []
    gc.collect()
    for k, intake in enumerate(intakes):
        now = NOW + timedelta(minutes=7 * k)  # a fresh clock per request, as in the service
        t0 = time.perf_counter()
        proposal = propose(intake, roster, table, config, now)
        times.append((time.perf_counter() - t0) * 1000)
        statuses[proposal.status] = statuses.get(proposal.status, 0) + 1
        eligible.append(proposal.eligible)
    return {
        "therapists": roster.size,
        "intakes": count,
        "index_build_s": round(build_s, 3),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "max_ms": round(max(times), 3),
        "statuses": statuses,
        "eligible_median": int(np.median(eligible)),
    }


# --- Batch assignment -------------------------------------------------------------------------


def reference_objective(graph: MatchGraph) -> tuple[int, int]:
    """(clients placed, total milli-points) of an exact optimum by a different method: SciPy's
    dense ``linear_sum_assignment`` on the capacity-expanded matrix, placements worth a
    constant larger than any score difference (same lexicographic objective)."""
    n = len(graph.clients)
    value = graph.score_millis - int(graph.score_millis.min()) + 1
    one_more = n * int(value.max()) + 1
    dense = np.zeros((n, len(graph.therapist_ids)), dtype=np.float64)
    dense[graph.client_index, graph.therapist_index] = one_more + value
    places = np.minimum(graph.capacity_left, n)
    expanded = np.repeat(dense, places, axis=1)
    del dense
    owner = np.repeat(np.arange(len(graph.therapist_ids)), places)
    if expanded.shape[1] < n:  # room for everyone to wait
        expanded = np.hstack([expanded, np.zeros((n, n - expanded.shape[1]))])
        owner = np.concatenate([owner, np.full(n - owner.shape[0], -1)])
    rows, cols = linear_sum_assignment(expanded, maximize=True)
    placed = expanded[rows, cols] > 0
    scores = dict(
        zip(
            zip(graph.client_index.tolist(), graph.therapist_index.tolist(), strict=True),
            graph.score_millis.tolist(),
            strict=True,
        )
    )
    total = sum(
        scores[(int(r), int(owner[c]))] for r, c in zip(rows[placed], cols[placed], strict=True)
    )
    return int(placed.sum()), total


def greedy_objective(graph: MatchGraph) -> tuple[int, int]:
    """Each client in turn takes their best eligible therapist with a place left."""
    left = graph.capacity_left.copy()
    placed = total = 0
    bounds = np.searchsorted(graph.client_index, np.arange(len(graph.clients) + 1))
    for c in range(len(graph.clients)):
        lo, hi = bounds[c], bounds[c + 1]
        if lo == hi:
            continue
        order = np.argsort(-graph.score_millis[lo:hi], kind="stable")
        for e in order:
            t = graph.therapist_index[lo + e]
            if left[t] > 0:
                left[t] -= 1
                placed += 1
                total += int(graph.score_millis[lo + e])
                break
    return placed, total


def bench_batch(
    seed: int, clients: int, therapists: int, reference: bool, distinct_windows: bool = False
) -> dict[str, Any]:
    network = Network(seed, therapists, (1, 5))
    rng = network.rng
    roster = Roster.build(network.therapists)
    table = network.table()
    table.aligned(roster)
    config = MatchingConfig()
    intakes = [make_intake(rng, k, distinct_windows) for k in range(clients)]
    gc.collect()
    t0 = time.perf_counter()
    result = assign(intakes, roster, table, config, NOW)
    total_s = time.perf_counter() - t0
    # The same again, split into its two steps (fresh roster: no memoised sessions).
    roster = Roster.build(network.therapists)
    t0 = time.perf_counter()
    graph = match_graph(intakes, roster, table, config, NOW)
    graph_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    solve(graph)
    solve_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "clients": clients,
        "therapists": therapists,
        "places": int(roster.capacity_left.sum()),
        "eligible_pairs": graph.pairs,
        "eligible_density": round(graph.pairs / (clients * therapists), 3),
        "seconds": round(total_s, 3),
        "scoring_s": round(graph_s, 3),
        "solving_s": round(solve_s, 3),
        "placed": len(result.placements),
        "unplaced": {
            reason: sum(1 for u in result.unplaced if u.reason == reason)
            for reason in ("no_eligible_therapist", "capacity_exhausted")
        },
        "objective": result.total_score,
        "solver": "OR-Tools SimpleMinCostFlow.solve_max_flow_with_min_cost on eligible pairs",
    }
    greedy_placed, greedy_total = greedy_objective(graph)
    out["greedy_baseline"] = {
        "placed": greedy_placed,
        "objective": greedy_total / 1000,
        "objective_ratio_engine_to_greedy": round(result.total_millis / greedy_total, 4)
        if greedy_total
        else None,
    }
    if reference:
        t0 = time.perf_counter()
        ref_placed, ref_total = reference_objective(graph)
        out["reference"] = {
            "method": "scipy.optimize.linear_sum_assignment, dense capacity-expanded matrix",
            "matrix": [clients, int(np.minimum(graph.capacity_left, clients).sum())],
            "placed": ref_placed,
            "objective": ref_total / 1000,
            "seconds": round(time.perf_counter() - t0, 3),
            "equal": ref_placed == len(result.placements) and ref_total == result.total_millis,
        }
    return out


# --- Match quality ----------------------------------------------------------------------------


def bench_quality(seed: int, clients: int, therapists: int) -> dict[str, Any]:
    network = Network(seed, therapists, (3, 8))
    rng = network.rng
    table = network.table()
    config = MatchingConfig()
    intakes = [make_intake(rng, k) for k in range(clients)]
    strategies = ("engine", "random_eligible", "first_available", "oracle")
    results: dict[str, list[float]] = {s: [] for s in strategies}
    for strategy in strategies:
        roster = Roster.build(network.therapists)
        pick_rng = np.random.default_rng(seed + 1)
        for intake in intakes:
            now = NOW
            if strategy == "engine":
                proposal = propose(intake, roster, table, config, now, top=1)
                if proposal.status != "matched":
                    continue
                chosen = proposal.options[0].therapist_id
            else:
                found = eligibility(intake, roster, table, config, now)
                if found.rows.shape[0] == 0:
                    continue
                ids = [roster.therapists[int(k)].id for k in found.rows]
                if strategy == "random_eligible":
                    chosen = ids[int(pick_rng.integers(len(ids)))]
                elif strategy == "first_available":
                    proposal = propose(intake, roster, table, _wait_only(config), now, top=1)
                    chosen = proposal.options[0].therapist_id
                else:
                    chosen = max(ids, key=lambda t: network.expected_improvement(intake, t))
            results[strategy].append(network.expected_improvement(intake, chosen))
            roster = roster.reserve(chosen)
    batch_roster = Roster.build(network.therapists)
    batch = assign(intakes, batch_roster, table, config, NOW)
    by_client = {i.client: i for i in intakes}
    results["engine_batch"] = [
        network.expected_improvement(by_client[p.client], p.therapist_id) for p in batch.placements
    ]
    mean = {s: float(np.mean(v)) for s, v in results.items()}
    return {
        "clients": clients,
        "therapists": therapists,
        "therapist_effect_sd": THERAPIST_EFFECT_SD,
        "placed": {s: len(v) for s, v in results.items()},
        "expected_improvement_rate": {s: round(m, 4) for s, m in mean.items()},
        "ratio_engine_vs_random_eligible": round(mean["engine"] / mean["random_eligible"], 4),
        "ratio_engine_vs_first_available": round(mean["engine"] / mean["first_available"], 4),
        "ratio_engine_batch_vs_random_eligible": round(
            mean["engine_batch"] / mean["random_eligible"], 4
        ),
        "ratio_engine_batch_vs_first_available": round(
            mean["engine_batch"] / mean["first_available"], 4
        ),
        "share_of_oracle_gain_over_random": round(
            (mean["engine"] - mean["random_eligible"]) / (mean["oracle"] - mean["random_eligible"]),
            3,
        ),
    }


def _wait_only(config: MatchingConfig) -> MatchingConfig:
    """ "First available": only the earliest common session counts."""
    zero = {k: 0.0 for k in config.weights.model_dump()}
    return MatchingConfig.for_site({"weights": {**zero, "wait": 1.0}}, base=config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--proposals", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    quick = args.quick
    out: dict[str, Any] = {
        "benchmark": "matching",
        "seed": args.seed,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": __import__("os").cpu_count(),
    }
    out["proposal"] = bench_proposals(args.seed, 100 if quick else args.proposals)
    out["batch"] = bench_batch(args.seed, 500 if quick else 5000, 200 if quick else 2000, True)
    out["batch_small"] = bench_batch(args.seed + 1, 1000, 400, True)
    out["batch_distinct_windows"] = bench_batch(
        args.seed + 2, 500 if quick else 5000, 200 if quick else 2000, False, distinct_windows=True
    )
    out["quality"] = bench_quality(args.seed, 300 if quick else 2000, 100 if quick else 400)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
