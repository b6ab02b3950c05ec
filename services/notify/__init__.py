"""Notify: signed webhooks, email and invitations, delivered once."""
