"""Who may post to the ingest service and how fast: bearer tokens and a token bucket per token.

Why per token: a webhook sender that loops on an error must not starve the others; each token has its own
bucket of events (refilled continuously at ``rate_limit_events_per_second`` up to ``rate_limit_burst_events``),
and a request takes as many as it carries events. Tokens are compared in constant time and never logged;
a client is named in logs by its index (``token #2``), not by its secret.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cxpulse.settings import IngestSettings


def load_tokens(settings: IngestSettings) -> list[str]:
    """The tokens of ``settings.tokens`` and of ``settings.token_file`` (one a line; blank lines, # comments out)."""
    tokens = [t.get_secret_value() for t in settings.tokens if t.get_secret_value()]
    if settings.token_file:
        for line in Path(settings.token_file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(line)
    return tokens


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Unauthorized(Exception):
    """No or a wrong bearer token; the message says which (never the token)."""


def client_of(header: str | None, tokens: list[str]) -> str:
    """The client name of an ``Authorization`` header: ``token #i``; ``anonymous`` when no token is configured."""
    if not tokens:
        return "anonymous"
    if not header or not header.startswith("Bearer "):
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    offered = header[len("Bearer "):].strip().encode("utf-8")
    found = None
    for index, token in enumerate(tokens):  # every token compared: the time does not tell which one matched
        if hmac.compare_digest(offered, token.encode("utf-8")):
            found = index
    if found is None:
        raise Unauthorized("invalid bearer token")
    return f"token #{found + 1}"


@dataclass
class _Bucket:
    level: float
    updated: float


@dataclass
class RateLimiter:
    """A token bucket of events per client; :meth:`take` says how long to wait when there are not enough."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str, events: int) -> float:
        """Take ``events`` from ``client``'s bucket: 0.0 when granted, else the seconds until they would be."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.level = min(float(self.burst), bucket.level + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if events <= bucket.level:
            bucket.level -= events
            return 0.0
        return (events - bucket.level) / self.rate
