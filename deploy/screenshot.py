"""``make screenshot``: a 1920x1080 PNG of the live wallboard, taken with Debian's headless Chromium.

    .venv/bin/python deploy/screenshot.py [--url http://127.0.0.1:8088/] [--out out/wallboard.png]
                                          [--timeout 120] [--own]

* If a wallboard answers at ``--url`` (e.g. ``make run`` is running), it is photographed as it is.
* Otherwise (or with ``--own``) the script starts what it needs and stops it afterwards: the local stack
  (``deploy/local/stack.sh up``; only the services it started are stopped again), a worker, the wallboard
  and the simulator, all under names of their own (app id, topics, Redis prefix: ``shot-<random>``) and on
  free ports, so it never mixes with a running ``make run``. It runs what ``make run`` runs: the example settings,
  ``cxpulse simulate --demo --history 1h`` (the last hour at once, so every window has data, then real time;
  the demo centre with agents, follow-ups and the app queue) and a wallboard with the agents panel on.

Waits until the page is live (not stale) and the tiles show service levels (the totals' and at least 3 in 4
queues'), then writes the PNG. Exit 0 when they did, 1 otherwise (the PNG is written anyway, to look at).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CXPULSE = str(BIN / "cxpulse") if (BIN / "cxpulse").exists() else shutil.which("cxpulse") or "cxpulse"
STACK = ROOT / "deploy" / "local" / "stack.sh"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH, HEIGHT = 1920, 1080


def say(text: str) -> None:
    print(f"screenshot: {text}", flush=True)


def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except Exception:  # noqa: BLE001
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, seconds: float, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + seconds
    while not answers(url):
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise SystemExit(f"screenshot: process for {url} exited (rc {proc.returncode}):\n{tail}")
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot: {url} does not answer after {seconds:.0f}s")
        time.sleep(0.3)


class OwnStack:
    """Stack services (if not running), a worker, the wallboard, the simulator; stopped by :meth:`close`."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cxpulse-shot-"))
        self.record = self.tmp / "started"
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        name = f"shot-{uuid.uuid4().hex[:8]}"
        self.name = name
        self.worker_port = free_port()
        self.wallboard_port = free_port()
        stack_env = subprocess.run([str(STACK), "env"], capture_output=True, text=True, check=True).stdout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_") or k.startswith("CXPULSE_STACK_")}
        for line in stack_env.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value
        self.env.update({
            "CXPULSE_WORKER__APP_ID": name,
            "CXPULSE_WORKER__WEB_PORT": str(self.worker_port),
            "CXPULSE_WORKER__DATA_DIR": str(self.tmp / "worker"),
            "CXPULSE_REDIS__KEY_PREFIX": name,
            "CXPULSE_WALLBOARD__PORT": str(self.wallboard_port),
            "CXPULSE_WALLBOARD__SHOW_AGENTS": "true",
            "CXPULSE_CONFIG": self.env.get("CXPULSE_CONFIG") or str(ROOT / "config" / "cxpulse.example.yaml"),
            "PYTHONUNBUFFERED": "1",
        })
        for topic in ("contact_events", "survey_responses", "contact_events_dlq", "survey_responses_dlq", "sla_breaches",
                      "agent_events", "agent_events_dlq", "feedback_breaches"):
            self.env[f"CXPULSE_KAFKA__TOPICS__{topic.upper()}"] = f"{name}-{topic.replace('_', '-')}"
        self.bootstrap = self.env.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.wallboard_port}/"

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen([CXPULSE, *args], cwd=str(self.tmp), env=self.env, stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))
        say(f"started {name} (pid {proc.pid}, log {log})")
        return proc

    def up(self) -> None:
        say("starting the local stack if needed (deploy/local/stack.sh up)")
        subprocess.run([str(STACK), "up", "--record", str(self.record)], check=True)
        worker = self.spawn("worker", "worker")
        wait_http(f"http://127.0.0.1:{self.worker_port}/readyz", 120, worker, self.tmp / "worker.log")
        ready = time.monotonic() + 60
        while time.monotonic() < ready:  # /readyz answers 503 while recovering
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.worker_port}/readyz", timeout=2):
                    break
            except Exception:  # noqa: BLE001
                time.sleep(0.5)
        board = self.spawn("wallboard", "wallboard")
        wait_http(self.url + "healthz", 30, board, self.tmp / "wallboard.log")
        say("simulator: cxpulse simulate --demo --history 1h (the last hour at once, then real time), as make run")
        self.spawn("simulator", "simulate", "--demo", "--history", "1h")

    def close(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                say(f"stopping {name} (pid {proc.pid})")
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        asyncio.run(self._delete_topics())
        self._delete_keys()
        started = self.record.read_text().split() if self.record.exists() else []
        if started:
            subprocess.run([str(STACK), "down", *started], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _delete_keys(self) -> None:
        """Our read-model keys in the stack's Redis (they expire anyway, but the breach stream does not)."""
        try:
            import redis

            client = redis.Redis.from_url(self.env.get("CXPULSE_REDIS__URL", "redis://127.0.0.1:16379/0"))
            doomed = list(client.scan_iter(match=f"{self.name}:*", count=500))
            if doomed:
                client.delete(*doomed)
            client.close()
        except Exception as exc:  # noqa: BLE001 - litter, not a failure
            say(f"could not delete the {self.name}:* keys: {exc}")

    async def _delete_topics(self) -> None:
        try:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="cxpulse-screenshot")
            await admin.start()
            try:
                doomed = [t for t in await admin.list_topics() if t.startswith(self.name)]
                if doomed:
                    await admin.delete_topics(doomed)
            finally:
                await admin.close()
        except Exception as exc:  # noqa: BLE001 - litter, not a failure
            say(f"could not delete the {self.name}-* topics: {exc}")


def photograph(url: str, out: Path, timeout: float) -> bool:
    """Open ``url`` at 1920x1080, wait for live values in every tile, write ``out``; True if they came."""
    from playwright.sync_api import sync_playwright

    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(url)
            deadline = time.monotonic() + timeout
            ok = False
            while time.monotonic() < deadline:
                state = page.evaluate("""() => {
                    const sl = [...document.querySelectorAll('[data-testid$="-service_level"]')];
                    const total = document.querySelector('[data-testid="totals-service_level"]');
                    return {stale: document.body.dataset.stale, tiles: sl.length,
                            empty: sl.filter(e => e.textContent === '\\u2013').length,
                            total: total ? total.textContent : null,
                            scroll: document.documentElement.scrollHeight > window.innerHeight};
                }""")
                # live, and service levels shown: the totals' and (nearly) every queue's (a queue such as
                # "unknown", which only has surveys, never has one)
                if (state["stale"] == "false" and state["tiles"] > 1 and state["total"] not in (None, "\u2013")
                        and state["empty"] <= state["tiles"] // 4):
                    ok = True
                    break
                time.sleep(1.0)
            page.wait_for_timeout(1500)  # one more update
            page.screenshot(path=str(out))
            say(f"wrote {out} ({WIDTH}x{HEIGHT}); tiles {state['tiles']}, without a value {state['empty']}, "
                f"stale {state['stale']}, scrolls {state['scroll']}")
            return ok
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8088/")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "wallboard.png")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for values in every tile")
    parser.add_argument("--own", action="store_true", help="always start an own stack, even if --url answers")
    args = parser.parse_args()

    if not args.own and answers(args.url.rstrip("/") + "/healthz"):
        say(f"photographing the running wallboard at {args.url}")
        ok = photograph(args.url, args.out, args.timeout)
    else:
        say(f"no wallboard at {args.url}: starting what is needed")
        own = OwnStack()
        try:
            own.up()
            ok = photograph(own.url, args.out, args.timeout)
        finally:
            own.close()
    if not ok:
        say("the tiles did not show values within the timeout (see the PNG); with `make run`, note that a "
            "simulator running ahead of the wall clock (CXPULSE_RUN_SPEED above 1) writes future timestamps that "
            "no window ending now contains yet")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
