"""What several of feedback's routes take: who may call them, the Idempotency-Key header and
the shape of an answer's value."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from pydantic import Field

STAFF_WHO_RECORD = ("therapist", "supervisor", "clinical_lead", "intake_coordinator")
STAFF_WHO_READ = ("therapist", "supervisor", "clinical_lead")

IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
ItemValue = Annotated[float, Field(allow_inf_nan=False)] | int
