"""Notify's use cases: plain async functions that routes, subscribers and the scheduler call.
They load rows, call the domain, persist and raise ``shared.errors`` (nothing of HTTP)."""
