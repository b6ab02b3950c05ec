"""The dry-run parameter of intake's imports (JSON or CSV bodies: shared/request_bodies.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

DryRun = Annotated[
    bool,
    Query(description="Check every row and count what would change; store nothing."),
]
