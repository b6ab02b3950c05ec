"""Feedback capture: questionnaires from clients, partners, family and therapists."""
