"""Wait until the local stack answers: Kafka a metadata request (with at least one broker), Redis PING.

Used by ``deploy/local/stack.sh up``. Exit codes: 0 ready, 10 Kafka not ready, 11 Redis not ready, 2 usage.
If a ``--*-pid`` is given (non-zero) and that process dies while we wait, fail at once instead of waiting
for the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

KAFKA_NOT_READY = 10
REDIS_NOT_READY = 11


def _why(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: rely on the timeout
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def kafka_ready(bootstrap: str) -> str | None:
    """None when a metadata request succeeds with at least one broker, else why not."""
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="cxpulse-wait-ready")
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=6)
        if not client.cluster.brokers():
            return "metadata lists no broker yet"
        return None
    except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
        return _why(exc)
    finally:
        await client.close()


async def redis_ready(url: str) -> str | None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return None if await client.ping() else "PING did not answer PONG"
    except Exception as exc:  # noqa: BLE001
        return _why(exc)
    finally:
        await client.aclose()


async def wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    redis_why: str | None = "not checked"
    kafka_why: str | None = "not checked"
    while True:
        if redis_why is not None:
            if not _alive(args.redis_pid):
                print(f"wait_ready: redis process {args.redis_pid} exited", file=sys.stderr)
                return REDIS_NOT_READY
            redis_why = await redis_ready(args.redis)
        if kafka_why is not None:
            if not _alive(args.kafka_pid):
                print(f"wait_ready: kafka process {args.kafka_pid} exited", file=sys.stderr)
                return KAFKA_NOT_READY
            kafka_why = await kafka_ready(args.kafka)
        if redis_why is None and kafka_why is None:
            return 0
        if time.monotonic() >= deadline:
            if redis_why is not None:
                print(f"wait_ready: redis {args.redis} not ready after {args.timeout:.0f}s: {redis_why}", file=sys.stderr)
                return REDIS_NOT_READY
            print(f"wait_ready: kafka {args.kafka} not ready after {args.timeout:.0f}s: {kafka_why}", file=sys.stderr)
            return KAFKA_NOT_READY
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka", required=True, help="bootstrap servers, host:port")
    parser.add_argument("--kafka-pid", type=int, default=0)
    parser.add_argument("--redis", required=True, help="redis:// URL")
    parser.add_argument("--redis-pid", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    # aiokafka logs every refused connection at ERROR while the broker boots: that is expected here
    logging.basicConfig(level=logging.CRITICAL)
    return asyncio.run(wait(args))


if __name__ == "__main__":
    sys.exit(main())
