"""The trajectories benchmark (bench/trajectories_bench.py) also prints the alert evaluation
with the fitted model against the fallback rule, as records/s and their ratio (a tiny run: the
real one uses 1,000,000 records)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "trajectories_bench.py"


def test_the_benchmark_prints_alert_evaluation_with_the_model_against_the_fallback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("trajectories_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    assert bench.main(["--records", "3000"]) == 0

    evaluation = json.loads(capsys.readouterr().out)["alert_evaluation"]
    assert evaluation["records"] == 3000
    for key in ("fallback_records_per_s", "model_records_per_s", "ratio"):
        assert evaluation[key] > 0
    assert evaluation["ratio"] == pytest.approx(
        evaluation["model_records_per_s"] / evaluation["fallback_records_per_s"], rel=0.01
    )
