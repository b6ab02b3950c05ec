"""Rapport's small kernel: events, settings, logging, DB, outbox/inbox, broker, auth, crypto.

Infrastructure only. Anything that knows about ruptures, scores or therapists lives in a service.
"""
