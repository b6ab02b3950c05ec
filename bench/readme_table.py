"""The README's performance table, written from one ``make bench`` results file.

    make bench-readme
    .venv/bin/python bench/readme_table.py [--results PATH] [--check]

Reads a results file (by default the newest ``bench/results/reference-<date>-*.json`` by the date
in its name) and rewrites the part of README.md between the lines ``<!-- bench-table:begin -->``
and ``<!-- bench-table:end -->``: a paragraph naming the machine, the versions and the file, then
one table whose rows are the ``ROWS`` below. A figure the file does not hold is "not measured".
``--check`` writes nothing and exits 1 if the README's block differs from what the file renders.

After a reference run: ``cp bench/results/latest.json bench/results/reference-<date>-2core.json
&& make bench-readme``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- bench-table:begin -->"
END = "<!-- bench-table:end -->"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Shown:
    """One figure of a cell: its label in the row's benchmark and what follows its number."""

    label: str
    unit: str = ""


@dataclass(frozen=True)
class Cell:
    """``template`` with ``{0}``, ``{1}``… replaced by the figures, each as its median (min–max);
    without figures the template is plain text. "not measured" when none of them was measured."""

    template: str = ""
    figures: tuple[Shown, ...] = ()


@dataclass(frozen=True)
class Row:
    text: str
    benchmark: str
    target: str = ""
    ours: Cell = Cell()
    bare: Cell = Cell()
    ratio: Cell = Cell()


def one(label: str, unit: str = "", template: str = "{0}") -> Cell:
    return Cell(template, (Shown(label, unit),))


def _rate(rate: int) -> str:
    return f"{rate:,}/s"


def _beside_bare(label: str, figure: str, unit: str, rate: int, target: str) -> Row:
    """A row of one figure at one offered rate: ours, the bare pipeline's and their ratio."""
    return Row(
        label,
        "e2e",
        target,
        one(f"e2e {figure} at {rate}/s", unit),
        one(f"bare {figure} at {rate}/s", unit),
        one(f"ratio {figure} at {rate}/s"),
    )


def _cpu(rate: int, target: str = "") -> Row:
    label = f"CPU per 1,000 responses, four services, at {_rate(rate)} offered"
    return _beside_bare(label, "CPU", " s", rate, target)


def _throughput(rate: int, target: str = "") -> Row:
    label = f"sustained throughput at {_rate(rate)} offered"
    return _beside_bare(label, "sustained", " responses/s", rate, target)


def _latency(rate: int, target: str = "") -> Row:
    return Row(
        f"answer's 2xx → webhook at {_rate(rate)}: p50 / p99",
        "e2e",
        target,
        Cell("{0} / {1}", (Shown(f"e2e p50 at {rate}/s"), Shown(f"e2e p99 at {rate}/s", " ms"))),
        one(f"bare p99 at {rate}/s", " ms", "p99 {0}"),
        one(f"ratio p99 at {rate}/s", "", "p99 {0}"),
    )


def _answer(rate: int) -> Row:
    return Row(
        f"the submission's own answer (due → 2xx) at {_rate(rate)}: p99",
        "e2e",
        ours=one(f"e2e answer p99 at {rate}/s", " ms"),
    )


ROWS: tuple[Row, ...] = (
    _cpu(300, "≤ 5 s"),
    Row(
        "— PostgreSQL's CPU at 300/s",
        "e2e",
        "",
        one("e2e PostgreSQL CPU at 300/s", " s"),
        Cell("none"),
    ),
    _cpu(100),
    _cpu(1000),
    _throughput(1000, "≥ 0.3 of bare"),
    _throughput(100),
    _throughput(300),
    _latency(100, "≤ 150 ms"),
    _latency(10),
    _latency(25),
    _latency(300),
    _latency(1000),
    _answer(100),
    _answer(300),
    Row(
        "overload at 1,000/s: admitted requests' answer p99",
        "e2e",
        "≤ 1 s",
        one("e2e answer p99 at 1000/s", " ms"),
    ),
    Row(
        "overload at 1,000/s: refused with 503",
        "e2e",
        ours=one("e2e refused at 1000/s", " % of requests"),
    ),
    Row(
        "overload at 1,000/s: risk alerts' p99 (routine alerts' beside)",
        "e2e",
        "never behind routine work",
        Cell(
            "risk {0}; routine {1}",
            (Shown("e2e risk p99 at 1000/s", " ms"), Shown("e2e p99 at 1000/s", " ms")),
        ),
    ),
    Row(
        "idle: the four services' CPU",
        "e2e",
        "≤ 2 % of one core",
        one("idle CPU, four services", " % of a core"),
    ),
    Row(
        "analytics scale-out, 1 → 2 processes, 6 partitions",
        "e2e",
        ours=Cell(
            "{0} → {1} events/s, ×{2}; per-episode order kept in every run: {3}",
            (
                Shown("analytics 1 consumer"),
                Shown("analytics 2 consumers"),
                Shown("scale-out ratio 2:1"),
                Shown("per-episode order kept"),
            ),
        ),
    ),
    Row(
        "feedback over HTTP alone (`feedback_bench.py`), saturation",
        "feedback",
        ours=one("saturation", " responses/s"),
        bare=one("bare FastAPI saturation", " requests/s", "{0} (FastAPI echo)"),
        ratio=one("ratio saturation"),
    ),
    Row(
        "analytics alone (`analytics_bench.py`)",
        "analytics",
        ours=Cell(
            "{0}; feedback→alert p99 {1}",
            (Shown("consumed", " events/s"), Shown("feedback→alert p99", " ms")),
        ),
        bare=one("bare aiokafka consumer", " events/s", "{0} (consume only)"),
        ratio=one("ratio"),
    ),
    Row(
        "notify alone (`notify_bench.py`): dispatcher; Kafka→webhook p99 at 100/s",
        "notify",
        ours=Cell(
            "{0}; {1} (flaky receiver: {2} delivered, {3} duplicates)",
            (
                Shown("dispatcher", " deliveries/s"),
                Shown("Kafka→webhook p99 at 100/s", " ms"),
                Shown("flaky receiver delivered", " %"),
                Shown("flaky receiver duplicates"),
            ),
        ),
        bare=Cell("httpx POST loop"),
        ratio=one("ratio dispatcher"),
    ),
    Row(
        "replay (`replay_bench.py`), 200,000 records",
        "replay",
        ours=one("replay", " records/s"),
        bare=one("bare parse-and-sum", " records/s"),
        ratio=one("ratio"),
    ),
    Row(
        "matching (`matching_bench.py`): proposal p50 / p99 over 10,000 therapists; exact batch",
        "matching",
        ours=Cell(
            "{0} / {1}; {2}, equal to the reference solver: {3}",
            (
                Shown("proposal p50"),
                Shown("proposal p99", " ms"),
                Shown("batch assignment", " s"),
                Shown("batch equals exact reference"),
            ),
        ),
    ),
)


# -- rendering (pure) ----------------------------------------------------------------------------
def number(value: Any) -> str:
    """Three significant digits below 100, whole numbers with thousands separators from 100."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    amount = float(value)
    if abs(amount) >= 100:
        return f"{amount:,.0f}"
    return f"{amount:.3g}"


def measured(figure: dict[str, Any] | None, unit: str = "") -> str | None:
    """The median, with min–max in brackets when more than one run produced it (and they
    differ as printed), and how many runs did when not all; None when it was not measured."""
    if figure is None or figure.get("median") is None or not figure.get("runs"):
        return None
    median = figure["median"]
    if isinstance(median, bool):
        return number(median) + unit
    runs, of = int(figure["runs"]), int(figure.get("of") or figure["runs"])
    notes = []
    low, high = number(figure["min"]), number(figure["max"])
    if runs > 1 and low != high:
        notes.append(f"{low}–{high}")
    if runs < of:
        notes.append(f"{runs} of {of} runs")
    bracket = f" ({'; '.join(notes)})" if notes else ""
    return f"{number(median)}{bracket}{unit}"


def cell(spec: Cell, figures: dict[str, dict[str, Any]]) -> str:
    """One cell from the figures of its row's benchmark (label → figure)."""
    if not spec.figures:
        return spec.template
    parts = [measured(figures.get(shown.label), shown.unit) for shown in spec.figures]
    if all(part is None for part in parts):
        return NOT_MEASURED
    return spec.template.format(*(NOT_MEASURED if part is None else part for part in parts))


def by_benchmark(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for figure in results.get("figures") or []:
        found.setdefault(str(figure.get("benchmark")), {})[str(figure.get("figure"))] = figure
    return found


def table(results: dict[str, Any], rows: Iterable[Row] = ROWS) -> list[str]:
    figures = by_benchmark(results)
    lines = [
        "| figure | target | ours | bare pipeline | ours / bare |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        own = figures.get(row.benchmark, {})
        cells = (
            row.text,
            row.target,
            cell(row.ours, own),
            cell(row.bare, own),
            cell(row.ratio, own),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def introduction(results: dict[str, Any], source: str) -> str:
    machine = results.get("machine") or {}
    versions = results.get("versions") or {}
    cpu = re.sub(r"\((R|TM)\)", "", str(machine.get("cpu") or "an unnamed CPU"))
    memory = f", {number(machine['memory_gb'])} GB" if machine.get("memory_gb") else ""

    def version(name: str) -> str:
        value = versions.get(name)
        return str(value).split(" (")[0] if value else "unknown"

    runs = results.get("runs_per_benchmark")
    medians = f"Medians of {runs} runs each" if runs else "Medians"
    day = str(results.get("started_at") or "")[:10]
    text = (
        "`make bench` runs every benchmark under `bench/` on the real stack, each figure next to"
        " a bare baseline measured in the same run."
        f" {medians}{f' on {day}' if day else ''}, min–max in brackets, on {' '.join(cpu.split())}"
        f" ({machine.get('cores', '?')} cores{memory}; Kafka {version('kafka')},"
        f" PostgreSQL {version('postgresql')}, Redis {version('redis_server')},"
        f" Python {version('python')}, all sharing the cores); every run is in `{source}`."
        " `make bench-readme` writes this table from that file (a figure the run did not produce"
        ' reads "not measured").'
        " [docs/performance.md](docs/performance.md) has what each benchmark measures, the goals,"
        " what dominates the cost, how these figures were reached and what is left."
    )
    return wrapped(text)


def wrapped(text: str, width: int = 99) -> str:
    """Lines of at most ``width`` characters, never breaking inside a `code span`."""
    lines: list[str] = []
    for word in re.findall(r"(?:`[^`]*`|[^\s`])+", text):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def render(results: dict[str, Any], source: str) -> str:
    """The README's block between the markers (without them) for one results file."""
    return "\n".join([introduction(results, source), "", *table(results)])


def block_of(readme: str) -> str:
    """The text between the marker lines (without them and the blank lines next to them)."""
    begin, end = _split(readme)
    return readme[begin:end].strip("\n")


def with_block(readme: str, block: str) -> str:
    begin, end = _split(readme)
    return readme[:begin] + "\n" + block + "\n\n" + readme[end:]


def _split(readme: str) -> tuple[int, int]:
    """Where the text between the marker lines starts and where the end marker's line starts."""
    begin, end = readme.find(BEGIN + "\n"), readme.find("\n" + END)
    if begin < 0 or end < begin:
        raise ValueError(f"README.md has no {BEGIN} … {END} lines around the performance table")
    return begin + len(BEGIN) + 1, end + 1


def newest_reference(paths: Iterable[Path]) -> Path:
    """The reference file with the latest date in its name (``reference-YYYY-MM-DD-….json``)."""
    dated = [
        (match.group(1), path.name, path)
        for path in paths
        if (match := re.match(r"reference-(\d{4}-\d{2}-\d{2})", path.name))
    ]
    if not dated:
        raise ValueError("no bench/results/reference-<date>-….json: pass --results")
    return max(dated)[2]


def source_name(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


# -- the files -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, help="results file (default: newest reference)")
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README differs")
    args = parser.parse_args(argv)
    try:
        path = args.results or newest_reference(RESULTS.glob("reference-*.json"))
        block = render(json.loads(path.read_text(encoding="utf-8")), source_name(path))
        readme = args.readme.read_text(encoding="utf-8")
        current = block_of(readme)
    except (OSError, ValueError) as error:
        print(f"bench-readme: {error}", file=sys.stderr)
        return 1
    if args.check:
        if current != block:
            print(
                f"bench-readme: README.md's performance table differs from {source_name(path)}:"
                " run make bench-readme",
                file=sys.stderr,
            )
            return 1
        return 0
    args.readme.write_text(with_block(readme, block), encoding="utf-8")
    print(f"bench-readme: README.md's performance table written from {source_name(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
