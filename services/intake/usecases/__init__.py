"""Intake's use cases: plain async functions that routes and subscribers both call. They load
rows, call the domain, persist and emit through the outbox in the caller's transaction; they
raise :mod:`services.intake.errors` (never an HTTP response)."""
