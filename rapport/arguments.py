"""Argument types and groups shared by the ``rapport`` subcommands (``demo``, ``simulate``)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def add_network_size(parser: argparse.ArgumentParser) -> None:
    """The size of the simulated counselling network: sites, therapists, clients, weeks."""
    parser.add_argument("--sites", type=positive, default=3)
    parser.add_argument("--therapists", type=positive, default=30)
    parser.add_argument("--clients", type=positive, default=300)
    parser.add_argument("--weeks", type=positive, default=16)
