"""Intake: therapist registry, client intakes, matching and episodes."""
