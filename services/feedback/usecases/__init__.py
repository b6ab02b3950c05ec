"""Feedback's use cases: plain async functions that routes and subscribers both call. They load
rows, call the domain, persist and emit through the outbox, and refuse with domain errors
(``services.feedback.errors``); nothing here knows HTTP."""
