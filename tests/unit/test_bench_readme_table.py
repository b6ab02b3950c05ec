"""The README's performance table (bench/readme_table.py): the committed block is what the
script renders from the newest reference results, and how figures print."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_readme_table", ROOT / "bench" / "readme_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_readme_table"] = module
    spec.loader.exec_module(module)
    return module


def _figure(
    benchmark: str, label: str, median: Any, low: Any, high: Any, runs: int = 3
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "figure": label,
        "unit": "",
        "median": median,
        "min": low,
        "max": high,
        "runs": runs,
        "of": 3,
    }


RESULTS: dict[str, Any] = {
    "started_at": "2026-12-01T10:00:00+00:00",
    "runs_per_benchmark": 3,
    "machine": {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "memory_gb": 23.5},
    "versions": {
        "kafka": "4.4.0",
        "postgresql": "15.18 (Debian 15.18-0+deb12u1)",
        "redis_server": "7.0.15",
        "python": "3.11.7",
    },
    "figures": [
        _figure("e2e", "e2e CPU at 300/s", 4.4567, 4.2, 5.04),
        _figure("e2e", "bare CPU at 300/s", 2.578, 2.578, 2.578),
        _figure("e2e", "ratio CPU at 300/s", 1.7288, 1.6, 1.95, runs=2),
        _figure("e2e", "e2e p50 at 100/s", 85.34, 80.0, 91.2),
        _figure("e2e", "e2e p99 at 100/s", 1549.27, 1466.7, 1948.26),
        _figure("e2e", "idle CPU, four services", 1.234, 1.234, 1.234, runs=1),
        _figure("e2e", "per-episode order kept", True, True, True),
        # the same label in another benchmark is another figure
        _figure("replay", "ratio", 0.2119, 0.207, 0.222),
        _figure("analytics", "ratio", 0.004, 0.004, 0.004),
    ],
}


def _row(lines: list[str], text: str) -> list[str]:
    """The cells after the first of the table row whose first cell is ``text``."""
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == text:
            return cells[1:]
    raise AssertionError(f"no row {text!r}")


def test_the_committed_readme_block_is_what_the_newest_reference_renders(
    script: ModuleType,
) -> None:
    reference = script.newest_reference((ROOT / "bench" / "results").glob("reference-*.json"))
    results = json.loads(reference.read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert script.block_of(readme) == script.render(results, script.source_name(reference)), (
        "README.md's performance table is not what bench/readme_table.py writes: make bench-readme"
    )


def test_the_newest_reference_is_chosen_by_the_date_in_its_name(script: ModuleType) -> None:
    paths = [
        Path("reference-2026-11-26-2core.json"),
        Path("reference-2026-12-04-2core.json"),
        Path("reference-2026-02-30-8core.json"),
        Path("latest.json"),
    ]
    assert script.newest_reference(paths) == Path("reference-2026-12-04-2core.json")
    with pytest.raises(ValueError):
        script.newest_reference([Path("latest.json")])


def test_numbers_print_with_three_significant_digits_below_100_and_thousands_separators_above(
    script: ModuleType,
) -> None:
    assert [script.number(v) for v in (0.0042, 0.685, 4.4567, 68.64, 99.4, 100.1, 1549.27)] == [
        "0.0042",
        "0.685",
        "4.46",
        "68.6",
        "99.4",
        "100",
        "1,549",
    ]
    assert script.number(63067.8) == "63,068"
    assert (script.number(True), script.number(False)) == ("yes", "no")


def test_a_cell_is_the_median_with_min_max_when_several_runs_differ(script: ModuleType) -> None:
    lines = script.table(RESULTS)
    assert lines[0] == "| figure | target | ours | bare pipeline | ours / bare |"
    cpu = _row(lines, "CPU per 1,000 responses, four services, at 300/s offered")
    # min and max equal as printed: the median alone; fewer runs than asked: said so
    assert cpu == ["≤ 5 s", "4.46 (4.2–5.04) s", "2.58 s", "1.73 (1.6–1.95; 2 of 3 runs)"]
    latency = _row(lines, "answer's 2xx → webhook at 100/s: p50 / p99")
    assert latency[:2] == ["≤ 150 ms", "85.3 (80–91.2) / 1,549 (1,467–1,948) ms"]
    idle = _row(lines, "idle: the four services' CPU")
    assert idle[:2] == ["≤ 2 % of one core", "1.23 (1 of 3 runs) % of a core"]
    replay = _row(lines, "replay (`replay_bench.py`), 200,000 records")
    assert replay[3] == "0.212 (0.207–0.222)"
    analytics = _row(lines, "analytics alone (`analytics_bench.py`)")
    assert analytics[3] == "0.004"


def test_a_figure_the_file_lacks_renders_not_measured(script: ModuleType) -> None:
    lines = script.table(RESULTS)
    assert _row(lines, "overload at 1,000/s: refused with 503")[1] == "not measured"
    throughput = _row(lines, "sustained throughput at 1,000/s offered")
    assert throughput == ["≥ 0.3 of bare", "not measured", "not measured", "not measured"]
    latency = _row(lines, "answer's 2xx → webhook at 100/s: p50 / p99")
    assert latency[2:] == ["not measured", "not measured"]
    # some of a cell's figures measured: only the missing ones say so
    scale_out = _row(lines, "analytics scale-out, 1 → 2 processes, 6 partitions")
    assert scale_out[1] == (
        "not measured → not measured events/s, ×not measured;"
        " per-episode order kept in every run: yes"
    )
    # a run that produced nothing for a figure (runs 0) is not measured either
    empty = {"figures": [_figure("e2e", "e2e refused at 1000/s", None, None, None, runs=0)]}
    assert _row(script.table(empty), "overload at 1,000/s: refused with 503")[1] == "not measured"
    assert "not measured" in script.render({}, "bench/results/old.json")


def test_the_introduction_names_the_machine_the_versions_and_the_file(script: ModuleType) -> None:
    text = " ".join(script.introduction(RESULTS, "bench/results/x.json").split())
    assert (
        "Medians of 3 runs each on 2026-12-01, min–max in brackets, on Intel Xeon Processor"
        " (2 cores, 23.5 GB; Kafka 4.4.0, PostgreSQL 15.18, Redis 7.0.15, Python 3.11.7,"
        " all sharing the cores); every run is in `bench/results/x.json`."
    ) in text


def test_the_block_between_the_markers_is_replaced_and_the_rest_kept(script: ModuleType) -> None:
    readme = "# R\n\nbefore\n<!-- bench-table:begin -->\nold\n<!-- bench-table:end -->\nafter\n"
    written = script.with_block(readme, "new\n| a |")
    assert written == (
        "# R\n\nbefore\n<!-- bench-table:begin -->\n\n"
        "new\n| a |\n\n<!-- bench-table:end -->\nafter\n"
    )
    assert script.block_of(written) == "new\n| a |"
    with pytest.raises(ValueError):
        script.block_of("# R\nno markers\n")


def test_check_exits_1_when_the_readme_differs_and_writes_nothing(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "reference-2026-12-01-2core.json"
    results.write_text(json.dumps(RESULTS), encoding="utf-8")
    readme = tmp_path / "README.md"
    stale = "x\n<!-- bench-table:begin -->\nold\n<!-- bench-table:end -->\n"
    readme.write_text(stale, encoding="utf-8")
    arguments = ["--results", str(results), "--readme", str(readme)]
    assert script.main([*arguments, "--check"]) == 1
    assert readme.read_text(encoding="utf-8") == stale
    assert "differs" in capsys.readouterr().err
    assert script.main(arguments) == 0
    assert script.main([*arguments, "--check"]) == 0
    assert "| idle: the four services' CPU |" in readme.read_text(encoding="utf-8")
