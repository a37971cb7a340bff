"""The KPI document (``cxpulse replay --json``, ``GET /api/v1/kpis``, Redis ``{prefix}:kpis``) as models.

Why models for an output: the document is an interface too (the wallboard, a CRM widget, a second
implementation read it). Its JSON Schema (``docs/kpi-document.schema.json``) is generated from these models
and a test checks that what the core produces validates against them, field by field, with no extra keys.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cxpulse.models.agent_kpis import AgentsSection

Count = Annotated[int, Field(ge=0)]
Ratio = Annotated[float, Field(ge=0, le=1)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Window(_Doc):
    """One window: exact bounds and every count and ratio of kpis.md. A ratio is null when its denominator is 0."""

    start: str = Field(description="RFC 3339, inclusive; rolling windows may start at a bucket edge")
    end: str = Field(description="RFC 3339, exclusive ('now', or stream time + 1 µs for 'all')")
    offered: Count
    answered: Count
    answered_within_threshold: Count
    abandoned: Count
    abandoned_short: Count
    sla_breaches: Count
    service_level: Ratio | None = Field(description="by the queue's sl_formula (centre's for totals)")
    abandon_rate: Ratio | None
    asa_seconds: Annotated[float, Field(ge=0)] | None
    handled: Count
    aht_seconds: Annotated[float, Field(ge=0)] | None
    repeat_contacts: Count
    first_contacts: Count
    first_contacts_resolved: Count
    fcr: Ratio | None
    first_contacts_closed: Count
    first_contacts_confirmed: Count
    fcr_confirmed: Ratio | None
    nps_responses: Count
    promoters: Count
    passives: Count
    detractors: Count
    nps: Annotated[float, Field(ge=-100, le=100)] | None
    csat_responses: Count
    csat_satisfied: Count
    csat: Annotated[float, Field(ge=0, le=100)] | None
    # contract v2: kpis.md "Resolution and cost (v2)"
    contacts: Count = Field(description="contacts at t0 (their first contact.queued)")
    customers: Count = Field(description="distinct customers with a contact at t0 in the window (in total: each once)")
    contacts_per_customer: Annotated[float, Field(ge=0)] | None
    resolved: Count = Field(description="final contact.ended (not transferred) with resolved true")
    average_resolution_seconds: Annotated[float, Field(ge=0)] | None = Field(
        description="resolution_seconds / resolved; resolution time = final end - t0, across transfers")
    cost: Annotated[float, Field(ge=0)] | None = Field(
        description="cost of handled contacts in configured queues; null when none was configured")
    costed_contacts: Count = Field(description="handled contacts of queues with cost configured")
    cost_per_contact: Annotated[float, Field(ge=0)] | None
    # contract v2: kpis.md "Closed-loop feedback (v2)"
    detractor_feedback: Count = Field(description="survey responses with nps <= 6 or csat <= 2")
    followed_up: Count = Field(description="detractor feedback followed up, at the first follow-up")
    average_feedback_response_seconds: float | None = Field(
        description="feedback_response_seconds / followed_up (negative only if a follow-up predates its survey)")
    feedback_breaches: Count = Field(description="detractor feedback not followed up by survey ts + target")


class Live(_Doc):
    """The queue now: contacts waiting and the wait of the longest-waiting one; detractor feedback awaiting a
    follow-up and the age of the oldest (contract v2)."""

    waiting: Count
    longest_wait_seconds: Annotated[float, Field(ge=0)]
    awaiting_follow_up: Count
    oldest_awaiting_seconds: Annotated[float, Field(ge=0)]


class QueueKpis(_Doc):
    queue: str
    channel: str
    live: Live
    windows: dict[str, Window] = Field(description='"15m", "1h", "24h", "today" (as configured); replay adds "all"')


class Totals(_Doc):
    live: Live
    windows: dict[str, Window]


class KpiDocument(_Doc):
    """Every KPI per (queue, channel) and in total over all queues (the centre-wide sl_formula)."""

    generated_at: str = Field(description="the instant 'now' used, RFC 3339")
    queues: list[QueueKpis]
    totals: Totals
    agents: AgentsSection | None = Field(default=None, description="contract v2: once any agent event was seen")
