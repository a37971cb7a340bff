"""Warn and critical bands of each wallboard metric, resolved per (queue, channel) from the settings.

Why defaults that follow the queue: a fixed "red at 30 s" makes an e-mail queue with a 4 h service-level
threshold red all day. So, unless the settings say otherwise, every band is derived from the queue's own
``sl_threshold_seconds`` (T) and ``sl_target`` (``kpi.for_queue``):

=============  =========  ==========================  ==========================
metric         direction  warn                        critical
=============  =========  ==========================  ==========================
service_level  below      the target                  10 points under the target
longest_wait   above      T / 2                       T
asa            above      T / 2                       T
abandon_rate   above      5 %                         10 %
waiting        above      5 (T <= 5 min), else none   10 (T <= 5 min), else none
oldest_await.  above      F / 2                       F
=============  =========  ==========================  ==========================

``oldest_awaiting`` (contract v2, the wallboard's feedback tile): the age of the oldest detractor feedback
awaiting a follow-up, against the queue's ``feedback_response_target`` F: critical from F on, because from
then on that feedback is a breach.

``wallboard.thresholds.default`` changes a band for every queue, ``wallboard.thresholds.queues.<q>`` for
one queue, field by field (a field set to null turns that band off).

Why one module the page does not duplicate: the server sends each entry's resolved bands with the document
(and ``GET /api/v1/thresholds`` lists them for Grafana or any other reader), so the page only compares, with
the same rule as :func:`state`: ``above``: critical when value >= critical, warn when value >= warn;
``below``: critical when value < critical, warn when value < warn (Grafana's threshold steps read so).
"""

from __future__ import annotations

from typing import Any, Literal

from cxpulse.settings import QueueSettings, Settings, Threshold

State = Literal["good", "warn", "critical", "none"]
EPS = 1e-9  # float noise (0.7999999999 of a 0.8 target) is not a miss
REALTIME_SECONDS = 300  # channels whose T is at most this have a "waiting" band by default

# metric -> (where in the entry: "live" or "window", the document key, direction, unit)
METRICS: dict[str, tuple[str, str, str, str]] = {
    "service_level": ("window", "service_level", "below", "ratio"),
    "waiting": ("live", "waiting", "above", "count"),
    "longest_wait": ("live", "longest_wait_seconds", "above", "seconds"),
    "asa": ("window", "asa_seconds", "above", "seconds"),
    "abandon_rate": ("window", "abandon_rate", "above", "ratio"),
    "oldest_awaiting": ("live", "oldest_awaiting_seconds", "above", "seconds"),
}


def default_bands(metric: str, queue: QueueSettings) -> dict[str, Any]:
    """The built-in band of ``metric`` for a queue with these effective settings (see the table above)."""
    t, target = queue.sl_threshold_seconds, queue.sl_target
    direction = METRICS[metric][2]
    if metric == "service_level":
        warn, critical = target, max(0.0, round(target - 0.10, 10))
    elif metric in ("longest_wait", "asa"):
        warn, critical = t / 2, t
    elif metric == "abandon_rate":
        warn, critical = 0.05, 0.10
    elif metric == "oldest_awaiting":
        target = queue.feedback_response_target
        warn, critical = target / 2, target
    else:  # waiting
        warn, critical = (5, 10) if t <= REALTIME_SECONDS else (None, None)
    return {"direction": direction, "warn": warn, "critical": critical}


def _over(band: dict[str, Any], override: Threshold | None) -> dict[str, Any]:
    if override is None:
        return band
    return {**band, **{name: getattr(override, name) for name in override.model_fields_set}}


def resolve(settings: Settings, queue: str, channel: str) -> dict[str, dict[str, Any]]:
    """Metric -> ``{"direction", "warn", "critical"}`` of one (queue, channel)."""
    effective = settings.kpi.for_queue(queue, channel)
    configured = settings.wallboard.thresholds
    mine = configured.queues.get(queue, {})
    out = {}
    for metric in METRICS:
        band = _over(_over(default_bands(metric, effective), configured.default.get(metric)), mine.get(metric))  # type: ignore[arg-type]
        out[metric] = band
    return out


def state(value: float | None, band: dict[str, Any] | None) -> State:
    """The colour of ``value`` in ``band``: ``none`` without a value or a band."""
    if value is None or band is None or (band.get("warn") is None and band.get("critical") is None):
        return "none"
    warn, critical = band.get("warn"), band.get("critical")
    if band.get("direction") == "below":
        if critical is not None and value < critical - EPS:
            return "critical"
        if warn is not None and value < warn - EPS:
            return "warn"
        return "good"
    if critical is not None and value >= critical - EPS:
        return "critical"
    if warn is not None and value >= warn - EPS:
        return "warn"
    return "good"


def value_of(entry: dict[str, Any], metric: str, window: str) -> float | None:
    """The figure of ``metric`` in a document entry (live state or the window's)."""
    where, key, _, _ = METRICS[metric]
    source = entry.get("live", {}) if where == "live" else (entry.get("windows", {}).get(window) or {})
    return source.get(key)


def states(entry: dict[str, Any], bands: dict[str, dict[str, Any]], window: str) -> dict[str, State]:
    """Metric -> state of every threshold metric of a document entry (the page computes the same)."""
    return {metric: state(value_of(entry, metric, window), bands.get(metric)) for metric in METRICS}


class Resolver:
    """Resolved bands per (queue, channel), cached: the settings are frozen while the server runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def of(self, queue: str, channel: str) -> dict[str, dict[str, Any]]:
        key = (queue, channel)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = resolve(self.settings, queue, channel)
        return found

    def document(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        """``GET /api/v1/thresholds``: the rule and each (queue, channel)'s bands."""
        return {
            "rule": {"above": "warn when value >= warn, critical when value >= critical",
                     "below": "warn when value < warn, critical when value < critical"},
            "metrics": {m: {"direction": d, "unit": u, "field": f"{where}.{key}"}
                        for m, (where, key, d, u) in METRICS.items()},
            "queues": [{"queue": q, "channel": c, "thresholds": self.of(q, c)} for q, c in sorted(set(pairs))],
        }
