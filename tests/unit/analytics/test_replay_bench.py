"""The replay benchmark (bench/replay_bench.py) runs and prints its figures (a tiny run: the real
one replays 1,000,000 records)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "replay_bench.py"


def test_the_benchmark_prints_throughput_against_a_bare_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("replay_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    assert (
        bench.main(["--records", "3000", "--memory-sample", "10", "--late-fraction", "0.05"]) == 0
    )

    figures = json.loads(capsys.readouterr().out)
    assert figures["records"] == 3000
    assert figures["bad_lines"] == 0
    assert figures["late_records"] > 0
    for key in ("seconds", "records_per_s", "baseline_records_per_s", "ratio"):
        assert figures[key] > 0
    assert figures["ratio"] == pytest.approx(
        figures["records_per_s"] / figures["baseline_records_per_s"], rel=0.01
    )
