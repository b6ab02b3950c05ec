"""Who may call analytics' routes: clinicians see client-level data, aggregates go further."""

from __future__ import annotations

CLINICAL = ("therapist", "supervisor", "clinical_lead")
AGGREGATES = ("supervisor", "clinical_lead", "data_analyst", "site_admin")
