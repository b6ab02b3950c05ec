"""Analytics' use cases, one module per resource: plain async functions that both the routes and
the subscribers call. They load rows, call the domain, persist, emit through the outbox and
raise the service's domain errors (``services.analytics.errors``); nothing here knows HTTP."""
