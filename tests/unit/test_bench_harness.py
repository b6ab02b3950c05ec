"""The benchmark harness (bench/run.py): how figures are picked out of each run's JSON and
summarised as median, min and max, and what a failed run does to a figure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


RUN = {
    "rapport": [
        {"offered_per_s": 100, "p99_ms": 40.0},
        {"offered_per_s": 300.0, "p99_ms": 90.5},
    ],
    "scale_out_analytics": {"order_kept": True, "throughput_ratio_2_to_1": 1.6},
}


def test_pick_follows_a_dotted_path(harness: ModuleType) -> None:
    assert harness.pick(RUN, "scale_out_analytics.throughput_ratio_2_to_1") == 1.6


def test_pick_selects_a_list_element_by_field_comparing_numbers_as_numbers(
    harness: ModuleType,
) -> None:
    assert harness.pick(RUN, "rapport[offered_per_s=300].p99_ms") == 90.5
    assert harness.pick(RUN, "rapport[offered_per_s=100].p99_ms") == 40.0


def test_pick_is_none_when_a_step_is_missing(harness: ModuleType) -> None:
    assert harness.pick(RUN, "rapport[offered_per_s=1000].p99_ms") is None
    assert harness.pick(RUN, "bare.p99_ms") is None
    assert harness.pick(RUN, "scale_out_analytics.order_kept.deeper") is None


def test_summary_is_median_min_and_max_of_the_runs(harness: ModuleType) -> None:
    assert harness.summarise([30.0, 10.0, 20.0]) == {
        "median": 20.0,
        "min": 10.0,
        "max": 30.0,
        "runs": 3,
    }


def test_summary_of_an_even_number_of_runs_is_the_mean_of_the_middle_two(
    harness: ModuleType,
) -> None:
    assert harness.summarise([1, 2, 4, 100])["median"] == 3.0


def test_summary_ignores_runs_without_the_figure_and_says_how_many_had_it(
    harness: ModuleType,
) -> None:
    assert harness.summarise([None, 5.0, 7.0]) == {"median": 6.0, "min": 5.0, "max": 7.0, "runs": 2}
    assert harness.summarise([None, None])["median"] is None


def test_a_boolean_figure_holds_only_if_it_held_in_every_run(harness: ModuleType) -> None:
    assert harness.summarise([True, True, True])["median"] is True
    assert harness.summarise([True, False, True])["median"] is False


def test_a_failed_run_leaves_a_gap_counted_against_the_figure(harness: ModuleType) -> None:
    benchmark = harness.Benchmark(
        "e2e",
        "bench/e2e_bench.py",
        (),
        (),
        (harness.Figure("p99 at 300/s", "rapport[offered_per_s=300].p99_ms", "ms"),),
    )
    second = {"rapport": [{"offered_per_s": 300, "p99_ms": 110.0}]}
    rows = harness.aggregate(benchmark, [RUN, None, second])
    assert rows == [
        {
            "benchmark": "e2e",
            "figure": "p99 at 300/s",
            "unit": "ms",
            "median": 100.25,
            "min": 90.5,
            "max": 110.0,
            "runs": 2,
            "of": 3,
        }
    ]
    table = harness.render_table(rows)
    assert "p99 at 300/s" in table and "2/3" in table


def test_every_figure_of_the_end_to_end_benchmark_is_found_in_its_output_shape(
    harness: ModuleType,
) -> None:
    """The paths the harness reads match what e2e_bench.py writes (a sample of its shape)."""
    rate = {
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "max_ms": 3.0,
        "sustained_per_s": 4.0,
        "cpu_s_per_1000": 5.0,
        "answer_p99_ms": 6.0,
        "stack_cpu_s_per_1000": {"kafka": 7.0, "postgres": 8.0},
        "refused_percent": 9.0,
        "risk_p99_ms": 10.0,
    }
    rates = (10, 25, 100, 300, 1000)
    sample = {
        "rapport": [{"offered_per_s": r, **rate} for r in rates],
        "idle": {"core_percent": 1.0},
        "bare_aiokafka": [{"offered_per_s": r, **rate} for r in rates],
        "ratio_to_bare": [{"offered_per_s": r, **rate} for r in rates],
        "scale_out_analytics": {
            "runs": [{"consumers": 1, "events_per_s": 1.0}, {"consumers": 2, "events_per_s": 2.0}],
            "throughput_ratio_2_to_1": 2.0,
            "order_kept": True,
        },
        "goals": {"throughput_ratio_to_bare": {"measured": 0.5}},
    }
    (e2e,) = [b for b in harness.BENCHMARKS if b.name == "e2e"]
    missing = [f.path for f in e2e.figures if harness.pick(sample, f.path) is None]
    assert missing == []
