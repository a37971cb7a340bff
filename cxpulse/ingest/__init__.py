"""``cxpulse ingest``: an HTTP door (``POST /api/v1/events``) for platforms that push events over webhooks."""
