"""Start a real server binary (Prometheus, Alertmanager) for a test module, and stop it after.

Shared by the unit tests that need one: a free port, wait for ``/-/ready`` (failing with the server's log if
it dies or does not get ready), then terminate and reap it.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(argv: Callable[[int], list[str]], log_path: Path, what: str, timeout: float = 20.0) -> Iterator[str]:
    """Run ``argv(port)`` on a free port; yield its base URL once ``/-/ready`` answers."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv(port), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
                    break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, f"{what} did not become ready"
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
