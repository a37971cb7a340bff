"""The worker's HTTP API (Faust's aiohttp server): KPIs as JSON, health and readiness.

Each worker answers for the partitions it owns (see docs/live-engine.md, "Several workers"): with one worker
that is everything; with several, Prometheus' ``sum by (queue)`` or the Redis read model give the whole.

"now" is the wall clock, as kpis.md asks of live operation; ``generated_at`` says which instant was used, so
``cxpulse replay FILE --now <generated_at>`` computes the very same document offline. ``?all=1`` adds the
``all`` window (first event to now), which the replay has too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry

from cxpulse.core.live import LiveKpis, now_us

JSON = "application/json"


def add_routes(app: faust.App, live: LiveKpis, *, ready: Callable[[], bool], recovered: Callable[[], Iterable[str]],
               problems: Callable[[], list[str]], registry: CollectorRegistry) -> None:
    """Register the HTTP routes on ``app``. They read only what they are given: the live state, whether the
    worker is ready (and which tables it has recovered so far, for /readyz), why it may not be live, and the
    registry of /metrics; not the worker itself, so this module does not import it."""

    def document(request: Any) -> dict[str, Any]:
        return live.document(now_us(), include_all=request.query.get("all") in ("1", "true"))

    def respond(web: Any, body: Any, status: int = 200) -> Any:
        return web.bytes(orjson.dumps(body), content_type=JSON, status=status)

    @app.page("/api/v1/kpis")
    async def kpis(web: Any, request: Any) -> Any:
        if not ready():
            return respond(web, {"error": "not ready: tables are recovering"}, 503)
        return respond(web, document(request))

    @app.page("/api/v1/kpis/{queue}")
    async def kpis_of_queue(web: Any, request: Any, queue: str) -> Any:
        if not ready():
            return respond(web, {"error": "not ready: tables are recovering"}, 503)
        doc = document(request)
        doc["queues"] = [q for q in doc["queues"] if q["queue"] == queue]
        if not doc["queues"]:
            return respond(web, {"error": f"no data for queue {queue!r} on this worker"}, 404)
        return respond(web, doc)

    @app.page("/api/v1/status")
    async def status(web: Any, request: Any) -> Any:
        """The worker's own health: what it processed, rejected and published (no ids, no KPI values)."""
        from cxpulse.models.events import format_ts

        return respond(web, {
            "ready": ready(),
            "partitions": sorted(live.contact_parts),
            "stream_time": format_ts(live.stream_time()) if live.stream_time() else None,
            # wall time of the last event handled (valid, duplicate alike): is the worker moving, and when did a
            # backlog end (bench/faust_baseline.py times the worker by it, without polling it every 100 ms)
            "last_processed": format_ts(live.last_processed_wall_us) if live.last_processed_wall_us else None,
            "topics": {
                topic: {"processed": h.processed, "duplicates": h.duplicates, "invalid": dict(h.invalid)}
                for topic, h in live.health.items()
            },
            "breaches_published": live.breaches_published_total,
            "feedback_breaches_published": live.feedback_breaches_published_total,
            "problems": problems(),
        })

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST

        from cxpulse.sinks.prometheus import exposition

        return web.bytes(exposition(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return respond(web, {"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Ready = state recovered AND live: consuming while records wait, and Kafka answering. A stalled consumer
        or an unreachable broker turns it unready (503 with the reason), so a load balancer, Kubernetes and the
        on-call engineer see what ``/api/v1/kpis`` alone would hide: figures that have stopped moving."""
        if not ready():
            return respond(web, {"status": "recovering", "recovered": sorted(recovered())}, 503)
        now_problems = problems()
        if now_problems:
            return respond(web, {"status": "not live", "problems": now_problems}, 503)
        return respond(web, {"status": "ready"})
