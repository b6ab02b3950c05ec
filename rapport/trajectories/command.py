"""``rapport trajectories fit --in FILE.jsonl --out MODEL.json``: fit expected trajectories.

    rapport trajectories fit --in FILE.jsonl --out MODEL.json [--band-width N | ID=N ...]
        [--min-episodes N] [--instruments DIR ...] [--strict-ranges]

Reads feedback records in the replay format (``rapport replay``'s input), and writes a model
(docs/trajectories.md): per outcome instrument, starting band and session number with at least
``--min-episodes`` episodes, the 10th–90th percentiles of the clients' totals. Bad lines are
reported on stderr with their line numbers and skipped; the bands and sessions with too few
episodes are listed on stderr and in the model's ``skipped``, and the model holds what could be
fitted. Exit status 0 when the model was written, 2 when the input, an option or the output is
wrong. (``--from-database``, fitting from analytics' closed episodes, is not there yet.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rapport.trajectories.fit import TrajectoryFit
    from rapport.trajectories.model import Skipped, TrajectoryModel
    from rapport.trajectories.read import ReadCounts

DEFAULT_MIN_EPISODES = 30


def band_width(text: str) -> tuple[str | None, Decimal]:
    """``N`` (every instrument) or ``ID=N`` (one instrument): a positive number of points."""
    name, _, number = text.rpartition("=")
    try:
        width = Decimal(number)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {number!r}") from None
    if not width.is_finite() or width <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of points, got {number}")
    return name or None, width


def positive_integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    actions = parser.add_subparsers(dest="action", required=True)
    fit = actions.add_parser(
        "fit",
        help="fit a model from feedback records in the replay format",
        description="Fit expected trajectories (percentiles of the clients' totals by starting "
        "band and session) from feedback records in the replay format.",
    )
    fit.add_argument("--in", dest="source", required=True, help="feedback records (JSONL)")
    fit.add_argument("--out", required=True, help="where to write the model (JSON; - for stdout)")
    fit.add_argument(
        "--band-width",
        type=band_width,
        action="append",
        default=[],
        metavar="N|ID=N",
        help="points per starting band: N for every instrument, ID=N for one (repeatable; "
        "default 5)",
    )
    fit.add_argument(
        "--min-episodes",
        type=positive_integer,
        default=DEFAULT_MIN_EPISODES,
        help=f"episodes a band needs at a session to be fitted (default {DEFAULT_MIN_EPISODES})",
    )
    fit.add_argument(
        "--instruments",
        action="append",
        default=[],
        help="a folder of extra instrument definitions (repeatable)",
    )
    fit.add_argument(
        "--strict-ranges",
        action="store_true",
        help="skip lines whose item values are outside the instrument's range or step (by "
        "default they are fitted as given, with a warning, as the replay does)",
    )
    return parser


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    args = (
        argv
        if isinstance(argv, argparse.Namespace)
        else add_arguments(argparse.ArgumentParser(prog="rapport trajectories")).parse_args(argv)
    )
    return fit_file(args)


def fit_file(args: argparse.Namespace) -> int:
    from rapport.trajectories.fit import TrajectoryFit
    from rapport.trajectories.read import fitted_instruments, read_into
    from shared.instruments import SHIPPED, load_instruments

    err = sys.stderr
    try:
        instruments = load_instruments(SHIPPED, *(Path(p) for p in args.instruments))
        widths = band_widths(args.band_width, fitted_instruments(instruments))
    except (OSError, ValueError) as error:
        print(f"rapport trajectories: {error}", file=err)
        return 2
    path = Path(args.source)
    try:
        source = path.open("rb")
    except OSError as error:
        print(f"rapport trajectories: cannot open {path}: {error.strerror or error}", file=err)
        return 2

    def report(lineno: int, reason: str) -> None:
        print(f"{path}:{lineno}: {reason}", file=err)

    started = time.perf_counter()
    fit = TrajectoryFit()
    with source:
        counts = read_into(
            fit, source, instruments, lenient_ranges=not args.strict_ranges, report=report
        )
    model = _model(fit, counts, widths, args.min_episodes)
    try:
        _write(model.model_dump_json(indent=2) + "\n", args.out)
    except OSError as error:
        print(f"rapport trajectories: cannot write {args.out}: {error}", file=err)
        return 2
    seconds = time.perf_counter() - started
    cells = sum(len(b.sessions) for i in model.instruments.values() for b in i.bands.values())
    print(
        f"rapport trajectories: {counts.records} records ({model.data.records_fitted} client "
        f"outcome scores, {model.data.episodes} episodes), {counts.bad_lines} bad lines; "
        f"fitted {cells} band-sessions of {len(model.instruments)} instrument(s), "
        f"{len(model.skipped)} with fewer than {args.min_episodes} episodes; "
        f"{counts.records / seconds if seconds > 0 else 0:,.0f} records/s",
        file=err,
    )
    for line in skipped_summary(model.skipped, args.min_episodes):
        print(f"rapport trajectories: {line}", file=err)
    return 0


def band_widths(
    chosen: Sequence[tuple[str | None, Decimal]], outcome: Iterable[str]
) -> dict[str, Decimal]:
    """Each outcome instrument's band width: its own ``ID=N``, else the last plain ``N``, else
    the default."""
    from rapport.trajectories.fit import DEFAULT_BAND_WIDTH

    names = frozenset(outcome)
    default = DEFAULT_BAND_WIDTH
    own: dict[str, Decimal] = {}
    for name, width in chosen:
        if name is None:
            default = width
        elif name not in names:
            raise ValueError(f"--band-width {name}=…: not an outcome instrument")
        else:
            own[name] = width
    return {name: own.get(name, default) for name in sorted(names)}


def _model(
    fit: TrajectoryFit, counts: ReadCounts, widths: dict[str, Decimal], min_episodes: int
) -> TrajectoryModel:
    from rapport.trajectories.model import MODEL_VERSION, DataCounts, TrajectoryModel

    fitted = fit.fit(widths, min_episodes)
    return TrajectoryModel(
        version=MODEL_VERSION,
        fitted_at=datetime.now(UTC).replace(microsecond=0),
        min_episodes=min_episodes,
        percentile_method="linear",
        smoothing="none",
        data=DataCounts(
            lines=counts.lines,
            records=counts.records,
            bad_lines=counts.bad_lines,
            records_fitted=fitted.records,
            episodes=fitted.episodes,
            instruments=fitted.counts,
        ),
        instruments=fitted.instruments,
        skipped=fitted.skipped,
    )


def _write(text: str, out: str) -> None:
    """To stdout (``-``), or whole to a file: written beside it, then renamed over it, so a
    reader never sees half a model."""
    if out == "-":
        sys.stdout.write(text)
        return
    target = Path(out)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def skipped_summary(skipped: Sequence[Skipped], min_episodes: int) -> list[str]:
    """One line per instrument and band: the sessions with too few episodes, runs joined
    (``ors band 7: sessions 9–12, 15 had fewer than 30 episodes (3–29)``)."""
    by_band: dict[tuple[str, int], list[Skipped]] = {}
    for cell in skipped:
        by_band.setdefault((cell.instrument, cell.band), []).append(cell)
    lines = []
    for (instrument, band), cells in sorted(by_band.items()):
        sessions = sorted(c.session for c in cells)
        runs: list[list[int]] = []
        for session in sessions:
            if runs and session == runs[-1][-1] + 1:
                runs[-1].append(session)
            else:
                runs.append([session])
        spans = ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
        low, high = min(c.n for c in cells), max(c.n for c in cells)
        n = f"{low}" if low == high else f"{low}–{high}"
        word = "session" if len(sessions) == 1 else "sessions"
        lines.append(
            f"{instrument} band {band}: {word} {spans} had fewer than {min_episodes} "
            f"episodes ({n}); not fitted"
        )
    return lines
