"""Analytics: alliance state, alerts, therapist effectiveness, charts."""
