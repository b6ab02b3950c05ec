"""Trajectory-fit benchmark (issue 18): fitting N records of a simulated network whose true
trajectories are known, against a bare loop over the same lines, and the fit's error per band.

    .venv/bin/python bench/trajectories_bench.py [--records 1000000] [--seed 18]

Prints one JSON object: ``records``, ``seconds`` and ``records_per_s`` of the fit as
``rapport trajectories fit`` runs it (reading the file, checking and scoring each line, keeping
the client outcome scores, then the percentiles), ``read_seconds`` and ``fit_seconds`` (the
two parts), ``baseline_records_per_s`` (a bare loop that only parses the same lines and sums
their items, measured in the same run), ``ratio`` (ours / bare), ``max_rss_mb`` (the process's
peak resident memory), and ``error``: per ORS starting band, over its sessions and the 25th,
50th and 75th percentiles, the largest absolute error against the true quantile and the largest
in standard errors of that quantile (``sqrt(p(1 − p) / n) / density``), and whether every
fitted percentile was within 4 standard errors (plus the ORS's rounding to 0.1).

Then ``alert_evaluation``: the same records replayed through the alert rules (``rapport
replay``'s loop, all records held in memory) twice in the same run, without a model (rule 9's
fallback everywhere) and with the model just fitted (rule 9 against the expected trajectories
where it has the band and session): ``fallback_records_per_s``, ``model_records_per_s``, their
``ratio`` (model / fallback), the seconds of each and the not_on_track alerts each opened.

The simulated network is tests/support/trajectory_truth.py's: five starting bands of the ORS,
4–12 sessions an episode, the client's SRS every session, a partner's ORS in a fifth of the
episodes, a PHQ-9 every other session in a third, amended answers and late first records.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rapport.replay import replay_lines
from rapport.trajectories.fit import TrajectoryFit
from rapport.trajectories.model import InstrumentTrajectories
from rapport.trajectories.read import read_into
from shared.instruments import SHIPPED, load_instruments
from tests.support.trajectory_truth import KnownTrajectories

Z = 4
PERCENTILES = (25, 50, 75)
LINES_PER_EPISODE = 20  # about, with the defaults of KnownTrajectories (an upper bound is fine)


def write_records(path: Path, records: int, seed: int, truth: KnownTrajectories) -> None:
    per_band = records // (LINES_PER_EPISODE * len(truth.bands)) + 1
    lines = islice(truth.lines(random.Random(seed), per_band * 2), records)
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")


def bare(path: Path) -> tuple[int, float]:
    """The bare loop: parse each line and sum its items."""
    loads = json.loads
    count, total = 0, 0.0
    with path.open("rb") as source:
        for line in source:
            total += sum(loads(line)["items"].values())
            count += 1
    return count, total


def fit(path: Path) -> tuple[TrajectoryFit, Any, int, float]:
    instruments = load_instruments(SHIPPED)
    fitting = TrajectoryFit()
    started = time.perf_counter()
    with path.open("rb") as source:
        counts = read_into(fitting, source, instruments)
    read_seconds = time.perf_counter() - started
    return fitting, fitting.fit(), counts.records, read_seconds


def error_per_band(fitted: InstrumentTrajectories, truth: KnownTrajectories) -> dict[str, Any]:
    bands: dict[str, Any] = {}
    for band_key, trajectory in sorted(fitted.bands.items(), key=lambda b: int(b[0])):
        band = int(band_key)
        worst, worst_se, within = 0.0, 0.0, True
        for session_key, cell in trajectory.sessions.items():
            session = int(session_key)
            for pct in PERCENTILES:
                p = pct / 100
                error = abs(getattr(cell, f"p{pct}") - truth.quantile(band, session, p))
                se = truth.standard_error(band, session, p, cell.n)
                worst, worst_se = max(worst, error), max(worst_se, error / se)
                within = within and error <= Z * se + 0.05
        bands[band_key] = {
            "sessions": len(trajectory.sessions),
            "min_n": min(c.n for c in trajectory.sessions.values()),
            "max_abs_error": round(worst, 3),
            "max_error_in_se": round(worst_se, 2),
            "within_sampling_error": within,
        }
    return bands


def alert_evaluation(path: Path, fitted: Any) -> dict[str, Any]:
    """Replay the records without and with the fitted model (see the module docstring)."""
    instruments = load_instruments(SHIPPED)
    lines = path.read_bytes().splitlines()
    runs: dict[str, tuple[int, float, int]] = {}
    for name, model in (("fallback", None), ("model", fitted.instruments)):
        not_on_track = 0

        def sink(text: str) -> None:
            nonlocal not_on_track
            not_on_track += '"not_on_track"' in text

        gc.collect()
        started = time.perf_counter()
        stats = replay_lines(lines, instruments, sink, trajectories=model)
        runs[name] = (stats.records, time.perf_counter() - started, not_on_track)
    fallback_rate = runs["fallback"][0] / runs["fallback"][1]
    model_rate = runs["model"][0] / runs["model"][1]
    return {
        "records": runs["model"][0],
        "fallback_seconds": round(runs["fallback"][1], 2),
        "model_seconds": round(runs["model"][1], 2),
        "fallback_records_per_s": round(fallback_rate),
        "model_records_per_s": round(model_rate),
        "ratio": round(model_rate / fallback_rate, 3),
        "not_on_track_opened": {"fallback": runs["fallback"][2], "model": runs["model"][2]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    truth = KnownTrajectories()
    with tempfile.TemporaryDirectory(prefix="rapport-trajectories-bench-") as folder:
        path = Path(folder) / "records.jsonl"
        write_records(path, args.records, args.seed, truth)
        gc.collect()
        started = time.perf_counter()
        counted, _ = bare(path)
        bare_seconds = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        fitting, fitted, records, read_seconds = fit(path)
        seconds = time.perf_counter() - started
        evaluation = alert_evaluation(path, fitted)
    error = error_per_band(fitted.instruments["ors"], truth)
    rate = records / seconds
    baseline = counted / bare_seconds
    print(
        json.dumps(
            {
                "records": records,
                "records_fitted": fitting.records,
                "episodes": fitted.episodes,
                "seconds": round(seconds, 2),
                "read_seconds": round(read_seconds, 2),
                "fit_seconds": round(seconds - read_seconds, 2),
                "records_per_s": round(rate),
                "baseline_records_per_s": round(baseline),
                "ratio": round(rate / baseline, 3),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "error": {
                    "instrument": "ors",
                    "percentiles": list(PERCENTILES),
                    "z": Z,
                    "bands": error,
                    "all_within_sampling_error": all(
                        b["within_sampling_error"] for b in error.values()
                    ),
                },
                "alert_evaluation": evaluation,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
