"""Replay benchmark (issue 5, Performance): N synthetic feedback records through the alert rules,
in-process, against a bare loop over the same lines.

    .venv/bin/python bench/replay_bench.py [--records 1000000] [--seed 5] [--late-fraction 0.001]

Prints one JSON object: ``records``, ``seconds``, ``records_per_s`` (the replay loop of
``rapport replay``: JSON parsing, field and item checks, scoring, ``domain.apply``, formatting of
the alerts it opens), ``baseline_records_per_s`` (a bare loop that only parses the same lines and
sums the items), ``ratio`` (ours / bare, measured in the same run), plus the alert counts and the
memory per episode of the replay state (measured with tracemalloc on a sample of episodes).

Synthetic episodes: weekly sessions (6–16), the client's SRS and ORS each session, PHQ-9 every
other session (rarely item 9 > 0), a partner's SRS in a fifth of the episodes and WAI-SR with the
therapist's WAI-SR-T in another fifth; alliance follows a random walk with occasional ruptures and
repairs. Episodes interleave in arrival order (by date); ``--late-fraction`` of the records
arrive one step late (after the next record of the same episode), exercising late-data rebuilds.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rapport.replay import replay_lines
from shared.instruments import SHIPPED, load_instruments

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _clip(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _episode(rng: random.Random, index: int) -> list[tuple[datetime, dict[str, Any]]]:
    episode_id = f"ep-{index:07d}"
    site = f"site-{index % 7}"
    therapist = f"th-{index % 311}"
    client = f"{episode_id}-c"
    partner = f"{episode_id}-p" if rng.random() < 0.2 else None
    wai = rng.random() < 0.2
    start = START + timedelta(days=rng.randrange(0, 3 * 365), hours=rng.randrange(0, 9))
    sessions = rng.randrange(6, 17)
    alliance = rng.uniform(0.55, 0.98)  # on a 0-1 scale
    outcome = rng.uniform(0.3, 0.8)
    depression = rng.randrange(3, 24)
    rows: list[tuple[datetime, dict[str, Any]]] = []
    at = start
    for session in range(1, sessions + 1):
        if rng.random() < 0.08:
            alliance -= rng.uniform(0.12, 0.3)  # rupture
        alliance = _clip(alliance + rng.gauss(0.01, 0.04), 0.2, 1.0)
        outcome = _clip(outcome + rng.gauss(0.015, 0.05), 0.05, 0.98)
        depression = int(_clip(depression + rng.choice((-2, -1, -1, 0, 0, 1, 2)), 0, 27))
        base = {
            "episode_id": episode_id,
            "site_id": site,
            "therapist_id": therapist,
            "session": session,
            "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

        def srs(level: float) -> dict[str, float]:
            keys = ("relationship", "goals", "approach", "overall")
            return {k: round(_clip(level * 10 + rng.gauss(0, 0.5), 0, 10), 1) for k in keys}

        if wai:
            items = {
                str(i): int(_clip(round(1 + alliance * 4 + rng.gauss(0, 0.5)), 1, 5))
                for i in range(1, 13)
            }
            rows.append(
                (
                    at,
                    {
                        **base,
                        "respondent": "client",
                        "respondent_id": client,
                        "instrument": "wai-sr",
                        "items": items,
                    },
                )
            )
            t_items = {
                str(i): int(_clip(round(1.5 + alliance * 3.5 + rng.gauss(0, 0.6)), 1, 5))
                for i in range(1, 13)
            }
            rows.append(
                (
                    at,
                    {
                        **base,
                        "respondent": "therapist",
                        "respondent_id": f"{therapist}-{index}",
                        "instrument": "wai-sr-t",
                        "items": t_items,
                    },
                )
            )
        else:
            rows.append(
                (
                    at,
                    {
                        **base,
                        "respondent": "client",
                        "respondent_id": client,
                        "instrument": "srs",
                        "items": srs(alliance),
                    },
                )
            )
        if partner is not None:
            level = _clip(alliance + rng.gauss(-0.03, 0.08), 0.1, 1.0)
            rows.append(
                (
                    at,
                    {
                        **base,
                        "respondent": "partner",
                        "respondent_id": partner,
                        "instrument": "srs",
                        "items": srs(level),
                    },
                )
            )
        ors_keys = ("individually", "interpersonally", "socially", "overall")
        ors = {k: round(_clip(outcome * 10 + rng.gauss(0, 0.8), 0, 10), 1) for k in ors_keys}
        rows.append(
            (
                at,
                {
                    **base,
                    "respondent": "client",
                    "respondent_id": client,
                    "instrument": "ors",
                    "items": ors,
                },
            )
        )
        if session % 2 == 1:
            phq = {
                str(i): int(_clip(round(depression / 9 + rng.gauss(0, 0.5)), 0, 3))
                for i in range(1, 9)
            }
            phq["9"] = 1 if rng.random() < 0.02 else 0
            rows.append(
                (
                    at,
                    {
                        **base,
                        "respondent": "client",
                        "respondent_id": client,
                        "instrument": "phq-9",
                        "items": phq,
                    },
                )
            )
        at += timedelta(days=7 if rng.random() < 0.9 else 14)
    return rows


def generate(records: int, seed: int, late_fraction: float) -> list[bytes]:
    """``records`` replay lines (bytes), interleaved by date, a few records arriving late."""
    rng = random.Random(seed)
    rows: list[tuple[datetime, int, dict[str, Any]]] = []
    index = 0
    while len(rows) < records:
        for at, row in _episode(rng, index):
            rows.append((at, len(rows), row))
        index += 1
    del rows[records:]
    rows.sort(key=lambda r: (r[0], r[1]))
    lines = [json.dumps(row).encode() for _, _, row in rows]
    if late_fraction > 0:
        by_episode: dict[str, list[int]] = {}
        for position, (_, _, row) in enumerate(rows):
            by_episode.setdefault(row["episode_id"], []).append(position)
        for positions in by_episode.values():
            for a, b in pairwise(positions):
                if rng.random() < late_fraction and rows[a][2]["session"] < rows[b][2]["session"]:
                    lines[a], lines[b] = lines[b], lines[a]  # a arrives after a later session
    return lines


def bare(lines: list[bytes]) -> float:
    """The bare loop: parse each line and sum its items."""
    loads = json.loads
    total = 0.0
    for line in lines:
        obj = loads(line)
        total += sum(obj["items"].values())
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--late-fraction", type=float, default=0.001)
    parser.add_argument("--memory-sample", type=int, default=2_000, help="episodes for tracemalloc")
    args = parser.parse_args(argv)

    instruments = load_instruments(SHIPPED)
    t0 = time.perf_counter()
    lines = generate(args.records, args.seed, args.late_fraction)
    generated = time.perf_counter() - t0

    gc.collect()
    t0 = time.perf_counter()
    bare(lines)
    bare_seconds = time.perf_counter() - t0

    gc.collect()
    written = 0

    def sink(text: str) -> None:
        nonlocal written
        written += 1

    t0 = time.perf_counter()
    stats = replay_lines(lines, instruments, sink)
    seconds = time.perf_counter() - t0

    # State memory per episode, on a sample of whole episodes (tracemalloc is slow).
    sample_ids: set[str] = set()
    sample: list[bytes] = []
    for line in lines:
        episode = json.loads(line)["episode_id"]
        if episode in sample_ids or len(sample_ids) < args.memory_sample:
            sample_ids.add(episode)
            sample.append(line)
    del lines
    gc.collect()
    states: dict[str, Any] = {}
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    replay_lines(sample, instruments, None, states=states)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_episode = (after - before) / max(1, len(states))

    ours = stats.records / seconds
    baseline = args.records / bare_seconds
    print(
        json.dumps(
            {
                "records": stats.records,
                "seconds": round(seconds, 3),
                "records_per_s": round(ours),
                "baseline_records_per_s": round(baseline),
                "ratio": round(ours / baseline, 3),
                "episodes": stats.episodes,
                "late_records": stats.late_records,
                "bad_lines": stats.bad_lines,
                "alerts_opened": stats.opened,
                "alerts_resolved": stats.resolved,
                "state_bytes_per_episode": round(per_episode),
                "records_per_episode": round(stats.records / max(1, stats.episodes), 1),
                "generate_seconds": round(generated, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
