"""Correlation ids and W3C trace context, carried through HTTP requests and Kafka headers.

The ids live in context variables so that every log line written while handling a request or a
message carries them, and every event published from that work carries them onward.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import structlog

CORRELATION_HEADER = "correlation_id"
HTTP_CORRELATION_HEADER = "X-Correlation-ID"
TRACEPARENT = "traceparent"

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_CORRELATION = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    parent_id: str
    flags: str = "01"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace (what we send onward)."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


def parse_traceparent(value: str | None) -> TraceContext | None:
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return TraceContext(match.group(1), match.group(2), match.group(3))


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8))


def clean_correlation_id(value: str | None) -> str:
    """Accept a caller's correlation id only if it is short and plain; else make a new one."""
    if value and _CORRELATION.match(value):
        return value
    return uuid.uuid4().hex


def current_correlation_id() -> str:
    return correlation_id_var.get() or uuid.uuid4().hex


def current_trace() -> TraceContext:
    return parse_traceparent(traceparent_var.get()) or new_trace()


@contextmanager
def bound(correlation_id: str, trace: TraceContext) -> Iterator[None]:
    """Bind ids for the work in this block (context vars and structlog's log context)."""
    tokens = (correlation_id_var.set(correlation_id), traceparent_var.set(trace.header()))
    with structlog.contextvars.bound_contextvars(
        correlation_id=correlation_id, trace_id=trace.trace_id
    ):
        try:
            yield
        finally:
            correlation_id_var.reset(tokens[0])
            traceparent_var.reset(tokens[1])


def from_headers(headers: Mapping[str, str]) -> tuple[str, TraceContext]:
    """Ids from incoming headers (Kafka or HTTP), continuing the caller's trace."""
    lowered = {k.lower(): v for k, v in headers.items()}
    correlation = clean_correlation_id(
        lowered.get(CORRELATION_HEADER) or lowered.get(HTTP_CORRELATION_HEADER.lower())
    )
    incoming = parse_traceparent(lowered.get(TRACEPARENT))
    return correlation, (incoming.child() if incoming else new_trace())


def outgoing_headers() -> dict[str, str]:
    """Headers for anything we send from the current context."""
    return {
        CORRELATION_HEADER: current_correlation_id(),
        TRACEPARENT: current_trace().child().header(),
    }
