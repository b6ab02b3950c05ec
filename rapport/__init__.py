"""Rapport project tooling (local stack helpers)."""
