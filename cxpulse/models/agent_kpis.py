"""The ``agents`` section of the KPI document (contract v2: kpis.md "Agents (v2)", "Staffing (v2)") as models.

Why a module of its own: the section is optional (present once any agent event was seen) and made of other
shapes than the per-(queue, channel) windows: agents count per queue *name* and per team, seconds in state
per team. :class:`cxpulse.models.kpis.KpiDocument` refers to :class:`AgentsSection`; its JSON Schema comes with
``cxpulse schema``. Nothing here identifies an agent except ``agent_name`` in ``list``, which the worker only
fills when ``wallboard.show_agents`` is on.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentsLive(_Doc):
    """Agents now: logged in (any state but logged_out) and in each state; away split by reason
    (``unspecified`` when the event gave none)."""

    logged_in: Count
    available: Count
    on_contact: Count
    wrap_up: Count
    away: Count
    away_by_reason: dict[str, Count]


class AgentWindow(_Doc):
    """Seconds in each logged-in state within the window (the part of each state interval inside it, the
    current state up to now); occupancy = (on_contact + wrap_up) / (available + on_contact + wrap_up), null when
    that is 0."""

    start: str
    end: str
    available_seconds: Seconds
    on_contact_seconds: Seconds
    wrap_up_seconds: Seconds
    away_seconds: Seconds
    occupancy: Annotated[float, Field(ge=0, le=1)] | None


class Staffing(_Doc):
    """Erlang C from the 15m offered rate and the 1h AHT with the queue's T and sl_target; ``agents_required``
    null when offered or AHT is zero; ``gap`` = required - staffed (positive: short)."""

    offered_rate_per_hour: Seconds
    aht_seconds: Seconds | None
    traffic_erlangs: Seconds | None
    sl_threshold_seconds: Seconds
    sl_target: Annotated[float, Field(gt=0, le=1)]
    agents_required: Count | None
    agents_staffed: Count
    gap: int | None


class AgentQueue(_Doc):
    queue: str
    live: AgentsLive
    staffing: Staffing


class AgentTeam(_Doc):
    team: str | None = Field(description="null: agents whose events name no team")
    live: AgentsLive
    windows: dict[str, AgentWindow]


class ListedAgent(_Doc):
    """One logged-in agent on a board that shows agents: never the agent id."""

    agent_name: str | None
    state: Literal["available", "on_contact", "wrap_up", "away"]
    reason: str | None
    team: str | None
    queues: list[str]
    since: str | None
    seconds_in_state: Seconds


class AgentsSection(_Doc):
    """Agents in total (each once), per queue (in every queue they serve) with staffing, and per team."""

    live: AgentsLive
    windows: dict[str, AgentWindow]
    queues: list[AgentQueue]
    teams: list[AgentTeam]
    listed: list[ListedAgent] | None = Field(default=None, description="only with wallboard.show_agents")
