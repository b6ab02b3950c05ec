"""``rapport trajectories fit``: fit expected trajectories.

    rapport trajectories fit --in FILE.jsonl --out MODEL.json [--band-width N | ID=N ...]
        [--min-episodes N] [--instruments DIR ...] [--strict-ranges]
    rapport trajectories fit --from-database --out MODEL.json [--band-width …] [--min-episodes N]
        [--instruments DIR ...]

Reads feedback records in the replay format (``rapport replay``'s input), and writes a model
(docs/trajectories.md): per outcome instrument, starting band and session number with at least
``--min-episodes`` episodes, the 10th–90th percentiles of the clients' totals. Bad lines are
reported on stderr with their line numbers and skipped; the bands and sessions with too few
episodes are listed on stderr and in the model's ``skipped``, and the model holds what could be
fitted. Exit status 0 when the model was written, 2 when the input, an option or the output is
wrong.

``--from-database`` fits on analytics' own closed episodes instead (the client outcome scores
of every closed episode, all sites), connecting as ``RAPPORT_DATABASE_URL`` (for the
``analytics`` service) under row-level security: services/analytics/trajectory_refit.py. The
deployment's instruments are the shipped ones, ``RAPPORT_INSTRUMENTS_DIR``'s and
``--instruments``'. Exit status 2 also when the settings are wrong or the database cannot be
read.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rapport.trajectories.fit import TrajectoryFit
    from rapport.trajectories.model import Skipped, TrajectoryModel
    from rapport.trajectories.read import ReadCounts
    from shared.instruments import Instrument

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
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--in", dest="source", help="feedback records (JSONL)")
    source.add_argument(
        "--from-database",
        action="store_true",
        help="analytics' own closed episodes (RAPPORT_DATABASE_URL, all sites)",
    )
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
    if args.from_database:
        return fit_database(args)
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
    what = (
        f"{counts.records} records ({model.data.records_fitted} client outcome scores, "
        f"{model.data.episodes} episodes), {counts.bad_lines} bad lines"
    )
    seconds = time.perf_counter() - started
    rate = counts.records / seconds if seconds > 0 else 0
    return _written(model, args, err, what, f"{rate:,.0f} records/s")


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
    from rapport.trajectories.fit import fitted_model

    return fitted_model(
        fit,
        widths,
        min_episodes,
        fitted_at=datetime.now(UTC),
        lines=counts.lines,
        records=counts.records,
        bad_lines=counts.bad_lines,
    )


def fit_database(args: argparse.Namespace) -> int:
    """``--from-database``: fit on analytics' closed episodes (see the module's docstring)."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from rapport.trajectories.read import fitted_instruments
    from shared.instruments import SHIPPED, load_instruments
    from shared.settings import SettingsError, load_settings

    err = sys.stderr
    try:
        settings = load_settings()
        extra = [Path(settings.instruments_dir)] if settings.instruments_dir else []
        instruments = load_instruments(SHIPPED, *extra, *(Path(p) for p in args.instruments))
        widths = band_widths(args.band_width, fitted_instruments(instruments))
    except (OSError, ValueError, SettingsError) as error:
        print(f"rapport trajectories: {error}", file=err)
        return 2
    started = time.perf_counter()
    try:
        model = asyncio.run(
            _fit_database(settings.database_url_for("analytics"), instruments, widths, args)
        )
    except (OSError, SQLAlchemyError) as error:
        print(f"rapport trajectories: cannot read analytics' database: {error}", file=err)
        return 2
    what = (
        f"{model.data.records_fitted} client outcome scores of {model.data.episodes} "
        "closed episodes"
    )
    seconds = time.perf_counter() - started
    return _written(model, args, err, what, f"{seconds:.1f} s")


def _written(
    model: TrajectoryModel,
    args: argparse.Namespace,
    err: TextIO,
    what: str,
    speed: str,
) -> int:
    """Write the model and say on ``err`` what it was fitted on, what it holds and what had too
    few episodes (exit 0), or that it could not be written (exit 2)."""
    try:
        _write(model, args.out)
    except OSError as error:
        print(f"rapport trajectories: cannot write {args.out}: {error}", file=err)
        return 2
    cells = sum(len(b.sessions) for i in model.instruments.values() for b in i.bands.values())
    print(
        f"rapport trajectories: {what}; fitted {cells} band-sessions of "
        f"{len(model.instruments)} instrument(s), {len(model.skipped)} with fewer than "
        f"{args.min_episodes} episodes; {speed}",
        file=err,
    )
    for line in skipped_summary(model.skipped, args.min_episodes):
        print(f"rapport trajectories: {line}", file=err)
    return 0


async def _fit_database(
    url: str,
    instruments: Mapping[str, Instrument],
    widths: dict[str, Decimal],
    args: argparse.Namespace,
) -> TrajectoryModel:
    from services.analytics.trajectory_refit import fit_from_database
    from shared.db import make_engine, make_sessionmaker

    engine = make_engine(url, pool_size=1)
    try:
        return await fit_from_database(
            make_sessionmaker(engine), instruments, widths, args.min_episodes
        )
    finally:
        await engine.dispose()


def _write(model: TrajectoryModel, out: str) -> None:
    """To stdout (``-``), or whole to a file (:func:`write_model`: never half a model)."""
    from rapport.trajectories.model import write_model

    if out == "-":
        sys.stdout.write(model.model_dump_json(indent=2) + "\n")
        return
    write_model(model, Path(out))


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
