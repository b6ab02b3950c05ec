"""Every benchmark under ``bench/``, on the real stack, as one table (``make bench``).

    .venv/bin/python bench/run.py [--runs 3] [--quick] [--only e2e feedback ...]

Each benchmark script prints one JSON object; this runs each ``--runs`` times (one after the
other, never in parallel: they share the machine), picks the figures listed below out of every
run, and reports each as the median of the runs with min and max. Prints one table and writes
``bench/results/latest.json`` (``quick.json`` with ``--quick``) with the machine, the versions
of what was measured, every figure and every run's raw output.

The stack comes up as for the tests (``rapport stack up``, or ``RAPPORT_TEST_*`` endpoints).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Figure:
    label: str
    path: str  # dotted; ``list[key=value]`` picks the element of a list with that field
    unit: str


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    figures: tuple[Figure, ...]


def _rate_figures(prefix: str, rate: int) -> tuple[Figure, ...]:
    at = f"[offered_per_s={rate}]"
    return (
        Figure(f"{prefix} p50 at {rate}/s", f"rapport{at}.p50_ms", "ms"),
        Figure(f"{prefix} p99 at {rate}/s", f"rapport{at}.p99_ms", "ms"),
        Figure(f"{prefix} max at {rate}/s", f"rapport{at}.max_ms", "ms"),
        Figure(f"{prefix} sustained at {rate}/s", f"rapport{at}.sustained_per_s", "responses/s"),
        Figure(f"{prefix} CPU at {rate}/s", f"rapport{at}.cpu_s_per_1000", "CPU s/1000"),
        Figure(
            f"{prefix} PostgreSQL CPU at {rate}/s",
            f"rapport{at}.stack_cpu_s_per_1000.postgres",
            "CPU s/1000",
        ),
        Figure(f"{prefix} answer p99 at {rate}/s", f"rapport{at}.answer_p99_ms", "ms"),
        Figure(f"bare p99 at {rate}/s", f"bare_aiokafka{at}.p99_ms", "ms"),
        Figure(f"bare sustained at {rate}/s", f"bare_aiokafka{at}.sustained_per_s", "responses/s"),
        Figure(f"bare CPU at {rate}/s", f"bare_aiokafka{at}.cpu_s_per_1000", "CPU s/1000"),
        Figure(f"ratio p99 at {rate}/s", f"ratio_to_bare{at}.p99_ms", "ours/bare"),
        Figure(f"ratio sustained at {rate}/s", f"ratio_to_bare{at}.sustained_per_s", "ours/bare"),
        Figure(f"ratio CPU at {rate}/s", f"ratio_to_bare{at}.cpu_s_per_1000", "ours/bare"),
    )


E2E_FIGURES = (
    *_rate_figures("e2e", 10),
    *_rate_figures("e2e", 25),
    *_rate_figures("e2e", 100),
    *_rate_figures("e2e", 300),
    *_rate_figures("e2e", 1000),
    Figure("e2e refused at 1000/s", "rapport[offered_per_s=1000].refused_percent", "%"),
    Figure("e2e risk p99 at 1000/s", "rapport[offered_per_s=1000].risk_p99_ms", "ms"),
    Figure("e2e risk p99 at 100/s", "rapport[offered_per_s=100].risk_p99_ms", "ms"),
    Figure("idle CPU, four services", "idle.core_percent", "% of a core"),
    Figure("analytics 1 consumer", "scale_out_analytics.runs[consumers=1].events_per_s", "ev/s"),
    Figure("analytics 2 consumers", "scale_out_analytics.runs[consumers=2].events_per_s", "ev/s"),
    Figure("scale-out ratio 2:1", "scale_out_analytics.throughput_ratio_2_to_1", "x"),
    Figure("per-episode order kept", "scale_out_analytics.order_kept", "bool"),
    Figure("throughput ratio to bare", "goals.throughput_ratio_to_bare.measured", "ours/bare"),
)

BENCHMARKS = (
    Benchmark(
        "e2e",
        "bench/e2e_bench.py",
        ("--seconds", "3", "--drain", "15", "--scale-events", "600"),
        ("--quick",),
        E2E_FIGURES,
    ),
    Benchmark(
        "feedback",
        "bench/feedback_bench.py",
        ("--seconds", "4"),
        ("--seconds", "1", "--rate", "50", "--concurrency", "8"),
        (
            Figure("saturation", "rapport.saturation.answered_per_s", "responses/s"),
            Figure("bare FastAPI saturation", "bare_fastapi.saturation.answered_per_s", "req/s"),
            Figure("ratio saturation", "ratio_saturation_throughput", "ours/bare"),
            Figure("p99 at offered rate", "rapport.offered.p99_ms", "ms"),
        ),
    ),
    Benchmark(
        "analytics",
        "bench/analytics_bench.py",
        ("--events", "1000", "--rate", "100", "--seconds", "3"),
        ("--events", "100", "--rate", "20", "--seconds", "1"),
        (
            Figure("consumed", "rapport_events_per_s", "events/s"),
            Figure("bare aiokafka consumer", "bare_aiokafka_events_per_s", "events/s"),
            Figure("ratio", "ratio", "ours/bare"),
            Figure("feedback→alert p99", "latency_feedback_to_alert.p99_ms", "ms"),
        ),
    ),
    Benchmark(
        "notify",
        "bench/notify_bench.py",
        ("--seconds", "3", "--backlog", "600", "--flaky", "200", "--also-rates", "100"),
        ("--rate", "50", "--seconds", "1", "--backlog", "100", "--flaky", "30", "--also-rates"),
        (
            Figure(
                "Kafka→webhook p99 at 300/s",
                "rapport.latency_kafka_to_webhook[offered_alerts_per_s=300].p99_ms",
                "ms",
            ),
            Figure(
                "Kafka→webhook p99 at 100/s",
                "rapport.latency_kafka_to_webhook[offered_alerts_per_s=100].p99_ms",
                "ms",
            ),
            Figure(
                "end to end from backlog",
                "rapport.throughput_from_kafka_backlog.deliveries_per_s",
                "deliveries/s",
            ),
            Figure("dispatcher", "rapport.throughput_dispatcher.deliveries_per_s", "deliveries/s"),
            Figure(
                "ratio dispatcher", "ratio_dispatcher_throughput_to_bare_post_loop", "ours/bare"
            ),
            Figure("flaky receiver delivered", "rapport.flaky_receiver.delivered_pct", "%"),
            Figure("flaky receiver duplicates", "rapport.flaky_receiver.duplicates", "count"),
        ),
    ),
    Benchmark(
        "replay",
        "bench/replay_bench.py",
        ("--records", "200000"),
        ("--records", "20000", "--memory-sample", "200"),
        (
            Figure("replay", "records_per_s", "records/s"),
            Figure("bare parse-and-sum", "baseline_records_per_s", "records/s"),
            Figure("ratio", "ratio", "ours/bare"),
        ),
    ),
    Benchmark(
        "trajectories",
        "bench/trajectories_bench.py",
        ("--records", "1000000"),
        ("--records", "50000"),
        (
            Figure("trajectory fit", "records_per_s", "records/s"),
            Figure("bare parse-and-sum", "baseline_records_per_s", "records/s"),
            Figure("ratio", "ratio", "ours/bare"),
            Figure("peak memory", "max_rss_mb", "MB"),
            Figure("fit within sampling error", "error.all_within_sampling_error", "bool"),
        ),
    ),
    Benchmark(
        "clock",
        "bench/clock_bench.py",
        ("--episodes", "100000", "--due-share", "0.01", "--sweeps", "20"),
        ("--episodes", "5000", "--sweeps", "5"),
        (
            Figure("sweep, nothing due", "nothing_due.ours_wall_ms_per_sweep", "ms"),
            Figure("bare loop, nothing due", "nothing_due.bare_wall_ms_per_sweep", "ms"),
            Figure("ratio sweep, nothing due", "nothing_due.ratio_wall", "ours/bare"),
            Figure("sweep CPU, nothing due", "nothing_due.ours_cpu_ms_per_sweep", "ms"),
            Figure("sweep CPU per minute", "nothing_due.ours_cpu_ms_per_minute", "ms/min"),
            Figure("per due check fired", "some_due.ours_wall_ms_per_check", "ms"),
            Figure("CPU per due check fired", "some_due.ours_cpu_ms_per_check", "ms"),
            Figure("bare loop per due check", "some_due.bare_wall_ms_per_check", "ms"),
            Figure("ratio per due check", "some_due.ratio_wall_per_check", "ours/bare"),
            Figure("alerts opened = checks due", "some_due.alerts_opened", "count"),
        ),
    ),
    Benchmark(
        "matching",
        "bench/matching_bench.py",
        (),
        ("--quick",),
        (
            Figure("proposal p50", "proposal.p50_ms", "ms"),
            Figure("proposal p99", "proposal.p99_ms", "ms"),
            Figure("batch assignment", "batch.seconds", "s"),
            Figure("batch equals exact reference", "batch.reference.equal", "bool"),
            Figure("improvement vs random", "quality.ratio_engine_vs_random_eligible", "x"),
        ),
    ),
)


# -- aggregation (pure) --------------------------------------------------------------------------
def pick(document: Any, path: str) -> Any:
    """The value at a dotted path; ``name[key=value]`` selects from a list by a field (numbers
    compare as numbers). None when any step is missing."""
    current = document
    for step in path.split("."):
        name, _, selector = step.partition("[")
        if name:
            if not isinstance(current, dict) or name not in current:
                return None
            current = current[name]
        if selector:
            key, _, wanted = selector.rstrip("]").partition("=")
            if not isinstance(current, list):
                return None
            current = next((item for item in current if _matches(item, key, wanted)), None)
            if current is None:
                return None
    return current


def _matches(item: Any, key: str, wanted: str) -> bool:
    if not isinstance(item, dict) or key not in item:
        return False
    value = item[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value) == float(wanted)
        except ValueError:
            return False
    return str(value) == wanted


def summarise(values: list[Any]) -> dict[str, Any]:
    """Median, min and max of the runs that produced the figure (booleans: all / any)."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "runs": 0}
    if all(isinstance(v, bool) for v in present):
        return {
            "median": all(present),
            "min": all(present),
            "max": any(present),
            "runs": len(present),
        }
    numbers = [float(v) for v in present]
    return {
        "median": round(statistics.median(numbers), 3),
        "min": round(min(numbers), 3),
        "max": round(max(numbers), 3),
        "runs": len(numbers),
    }


def aggregate(benchmark: Benchmark, runs: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per figure; a failed run (None) counts as a run that produced nothing."""
    rows = []
    for figure in benchmark.figures:
        values = [pick(run, figure.path) if run is not None else None for run in runs]
        rows.append(
            {
                "benchmark": benchmark.name,
                "figure": figure.label,
                "unit": figure.unit,
                **summarise(values),
                "of": len(runs),
            }
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ("benchmark", "figure", "median", "min", "max", "unit", "runs")
    lines = [
        (
            r["benchmark"],
            r["figure"],
            _cell(r["median"]),
            _cell(r["min"]),
            _cell(r["max"]),
            r["unit"],
            f"{r['runs']}/{r['of']}",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in (2, 3, 4) else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    out.extend(line(cells) for cells in lines)
    return "\n".join(out)


# -- the machine and the versions ------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    memory_kb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1) if memory_kb else None,
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions(database_url: str, redis_url: str) -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for package in (
        "faststream",
        "aiokafka",
        "sqlalchemy",
        "sqlmodel",
        "asyncpg",
        "fastapi",
        "uvicorn",
        "pydantic",
        "httpx",
        "redis",
        "ortools",
        "numpy",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    try:
        from rapport import stack

        found["kafka"] = stack.kafka_version()
    except Exception as error:  # another origin of the broker (environment, containers)
        found["kafka"] = f"unknown ({type(error).__name__})"
    found["postgresql"] = _ask_postgres(database_url)
    found["redis_server"] = _ask_redis(redis_url)
    return found


def _ask_postgres(url: str) -> str | None:
    import asyncio

    import asyncpg

    async def ask() -> str:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return str(await connection.fetchval("show server_version"))
        finally:
            await connection.close()

    try:
        return asyncio.run(ask())
    except Exception:
        return None


def _ask_redis(url: str) -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(url)
        version = client.info("server").get("redis_version")
        client.close()
        return str(version)
    except Exception:
        return None


def stack_endpoints() -> tuple[str, str, str]:
    if os.environ.get("RAPPORT_TEST_DATABASE_URL"):
        return (
            os.environ["RAPPORT_TEST_KAFKA_BOOTSTRAP"],
            os.environ["RAPPORT_TEST_DATABASE_URL"],
            os.environ["RAPPORT_TEST_REDIS_URL"],
        )
    sys.path.insert(0, str(ROOT))
    from rapport import stack

    endpoints = stack.up()
    return endpoints.kafka_bootstrap, endpoints.database_url, endpoints.redis_url


# -- running --------------------------------------------------------------------------------------
def run_once(
    benchmark: Benchmark, quick: bool, timeout: float
) -> tuple[dict[str, Any] | None, str]:
    command = [
        sys.executable,
        benchmark.script,
        *(benchmark.quick_args if quick else benchmark.args),
    ]
    child = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.terminate()  # SIGTERM: the benchmark stops the services it started
        try:
            child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        return None, f"timed out after {timeout:.0f} s"
    if child.returncode != 0:
        return None, f"exit {child.returncode}: {stderr.strip()[-1500:]}"
    try:
        start = stdout.index("{")
        document: dict[str, Any] = json.loads(stdout[start:])
    except ValueError as error:
        return None, f"no JSON on stdout ({error})"
    return document, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per benchmark (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke run")
    parser.add_argument("--only", nargs="*", help="names of the benchmarks to run")
    parser.add_argument("--timeout", type=float, default=600, help="per run, seconds")
    parser.add_argument("--output", type=Path, help="where to write the JSON")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    output = args.output or RESULTS / ("quick.json" if args.quick else "latest.json")

    _, database_url, redis_url = stack_endpoints()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "runs_per_benchmark": runs,
        "machine": machine(),
        "versions": versions(database_url, redis_url),
        "figures": [],
        "raw": {},
        "errors": {},
    }
    began = time.monotonic()
    for benchmark in chosen:
        results: list[dict[str, Any] | None] = []
        for n in range(runs):
            print(f"[bench] {benchmark.name} run {n + 1}/{runs}", file=sys.stderr, flush=True)
            document, error = run_once(benchmark, args.quick, args.timeout)
            results.append(document)
            if error:
                print(f"[bench] {benchmark.name} failed: {error}", file=sys.stderr, flush=True)
                report["errors"].setdefault(benchmark.name, []).append(error)
        report["raw"][benchmark.name] = results
        report["figures"].extend(aggregate(benchmark, results))
        report["seconds"] = round(time.monotonic() - began, 1)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")  # after each: partial runs count
    print(render_table(report["figures"]))
    # Each target beside its figure and the bare pipeline's (the README's table, from this run).
    import readme_table  # bench/, next to this script

    print("\n" + "\n".join(readme_table.table(report)))
    print(
        f"\n{runs} run(s) each, {report['seconds']} s; machine: {report['machine']['cores']} cores,"
        f" load at start {report['machine']['load_average_at_start']}; written to {output}"
    )
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
