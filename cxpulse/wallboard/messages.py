"""The wallboard's message line: what a supervisor tells every board ("billing outage, callbacks from 14:00").

Why in Redis: every wallboard server (any number of replicas, on any host) shows the same messages, a message
outlives a server restart, and its expiry is Redis' own (``EXPIREAT``), so an old message cannot linger.
Keys (``P`` = ``redis.key_prefix``, names in :class:`cxpulse.sinks.redis_sink.Keys`):

* ``P:wallboard:message:<id>``: the message as JSON ``{id, text, queues, until, created_at}``, expiring at
  ``until``;
* ``P:wallboard:messages``: sorted set of ids scored by their expiry (epoch seconds), so a reader lists the
  live ones without ``SCAN``;
* ``P:wallboard:messages:changed``: a pub/sub channel; the servers push the new list to their pages at once.

Both ``cxpulse wallboard message`` and ``POST /api/v1/messages`` call :func:`add_message`.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from cxpulse.settings import parse_duration
from cxpulse.sinks.redis_sink import Keys

MAX_TEXT = 280
MAX_MESSAGES = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_QUEUE = re.compile(r"^[A-Za-z0-9._:/-]{1,100}$")


class MessageError(ValueError):
    """Bad message input; the text is one line for the CLI or the HTTP answer."""


def clean_text(text: str) -> str:
    """The text as shown: control characters and runs of blanks become one space; 1..280 characters."""
    cleaned = " ".join(_CONTROL.sub(" ", text).split())
    if not cleaned:
        raise MessageError("the message is empty")
    if len(cleaned) > MAX_TEXT:
        raise MessageError(f"the message has {len(cleaned)} characters; at most {MAX_TEXT}")
    return cleaned


def clean_queues(queues: list[str] | None) -> list[str]:
    out = []
    for name in queues or []:
        name = name.strip()
        if not name:
            continue
        if not _QUEUE.match(name):
            raise MessageError(f"not a queue name: {name!r}")
        if name not in out:
            out.append(name)
    return out


def parse_until(text: str | None, now: datetime, tz: str, default_seconds: int) -> datetime:
    """When a message expires (UTC): ``None`` -> now + default; ``"14:00"`` -> the next 14:00 in ``tz`` (the
    centre's ``kpi.timezone``: today, or tomorrow once it has passed); ``"30m"``, ``"2h"`` -> from now; an ISO
    8601 time with an offset -> that instant (must be in the future)."""
    if text is None or not text.strip():
        return now + timedelta(seconds=default_seconds)
    text = text.strip()
    clock = _CLOCK.match(text)
    if clock:
        hour, minute, second = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise MessageError(f"--until {text!r}: not a time of day")
        local = now.astimezone(ZoneInfo(tz))
        at = local.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if at <= local:
            at = at + timedelta(days=1)
        return at.astimezone(timezone.utc)
    try:
        return now + timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MessageError(f"--until {text!r}: use a time of day (14:00), a duration (30m, 2h) "
                           f"or an ISO time with offset") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(tz))
    if at <= now:
        raise MessageError(f"--until {text!r} has passed")
    return at.astimezone(timezone.utc)


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def add_message(client: Any, keys: Keys, text: str, queues: list[str] | None, until: datetime,
                      now: datetime) -> dict[str, Any]:
    """Store a message until ``until`` and tell the wallboard servers; returns it."""
    message = {"id": secrets.token_hex(4), "text": clean_text(text), "queues": clean_queues(queues),
               "until": _iso(until), "created_at": _iso(now)}
    if until <= now:
        raise MessageError("the message would expire at once")
    expiry = until.timestamp()
    await client.zremrangebyscore(keys.messages, "-inf", now.timestamp())
    if await client.zcard(keys.messages) >= MAX_MESSAGES:
        raise MessageError(f"already {MAX_MESSAGES} messages; remove one first")
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.message(message["id"]), orjson.dumps(message), exat=int(expiry) + 1)
        pipe.zadd(keys.messages, {message["id"]: expiry})
        pipe.publish(keys.messages_changed, b"add")
        await pipe.execute()
    return message


async def list_messages(client: Any, keys: Keys, now: datetime) -> list[dict[str, Any]]:
    """The live messages, soonest expiry first."""
    ids = await client.zrangebyscore(keys.messages, now.timestamp(), "+inf")
    if not ids:
        return []
    names = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    raws = await client.mget([keys.message(i) for i in names])
    out = []
    for raw in raws:
        if raw is None:
            continue
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict) and isinstance(message.get("text"), str):
            out.append(message)
    return out


async def remove_message(client: Any, keys: Keys, message_id: str | None) -> int:
    """Remove one message (``None``: all of them); returns how many were removed."""
    if message_id is None:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in await client.zrange(keys.messages, 0, -1)]
    else:
        ids = [message_id]
    if not ids:
        return 0
    async with client.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.messages, *ids)
        pipe.delete(*[keys.message(i) for i in ids])
        pipe.publish(keys.messages_changed, b"remove")
        removed, _, _ = await pipe.execute()
    return int(removed)


def seconds_left(message: dict[str, Any], now: datetime) -> float:
    return max(0.0, datetime.fromisoformat(message["until"].replace("Z", "+00:00")).timestamp() - now.timestamp())
