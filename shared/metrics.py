"""Prometheus metrics. Labels carry service, topic, route and outcome only: never a client."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "rapport_events_consumed_total",
    "Events taken from Kafka by a handler",
    ["service", "handler", "outcome"],  # outcome: applied, duplicate, dead_lettered
)
PUBLISHED = Counter(
    "rapport_events_published_total", "Events published from the outbox", ["service", "topic"]
)
DEAD_LETTERS = Counter(
    "rapport_dead_letters_total", "Messages sent to a dead-letter topic", ["service", "topic"]
)
HANDLER_SECONDS = Histogram(
    "rapport_handler_seconds", "Time to apply one event", ["service", "handler"]
)
OUTBOX_PENDING = Gauge("rapport_outbox_pending", "Outbox rows not yet published", ["service"])
HTTP_REQUESTS = Histogram(
    "rapport_http_request_seconds", "HTTP requests", ["method", "route", "status"]
)
# Requests refused by the admission limit (RAPPORT_HTTP_MAX_IN_FLIGHT) before any work.
HTTP_REFUSED = Counter(
    "rapport_http_refused_total", "HTTP requests refused: the process was at its limit", ["service"]
)
HTTP_IN_FLIGHT = Gauge(
    "rapport_http_in_flight", "HTTP requests being answered (probes not counted)", ["service"]
)
