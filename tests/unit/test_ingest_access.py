"""The ingest service's door: no open port beyond loopback, tokens from settings and a file, a bucket per token."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxpulse.cli import app
from cxpulse.ingest.access import RateLimiter, Unauthorized, client_of, is_loopback, load_tokens
from cxpulse.ingest.server import RefusedToStart, check_exposure
from cxpulse.settings import IngestSettings


def test_refuses_a_public_address_without_a_token() -> None:
    result = CliRunner().invoke(app, ["ingest", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.output == ("ingest: ingest.host='0.0.0.0' is not a loopback address and no token is configured: "
                             "set ingest.tokens or ingest.token_file (or bind 127.0.0.1)\n")
    with pytest.raises(RefusedToStart):
        check_exposure("192.0.2.10", [])
    check_exposure("192.0.2.10", ["t"])
    check_exposure("127.0.0.1", [])
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("example.org")


def test_tokens_come_from_settings_and_a_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# webhook senders\nfile-token-a\n\n  file-token-b  \n", encoding="utf-8")
    settings = IngestSettings(tokens=["inline"], token_file=str(file))
    tokens = load_tokens(settings)
    assert tokens == ["inline", "file-token-a", "file-token-b"]
    assert client_of("Bearer file-token-b", tokens) == "token #3"
    with pytest.raises(Unauthorized, match="^invalid bearer token$"):
        client_of("Bearer file-token-c", tokens)
    with pytest.raises(Unauthorized, match=r"^missing bearer token \(Authorization: Bearer <token>\)$"):
        client_of("Basic dXNlcjpwYXNz", tokens)
    assert client_of(None, []) == "anonymous"


def test_a_missing_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    from cxpulse.settings import ConfigError, load_settings

    config = tmp_path / "c.yaml"
    config.write_text(f"ingest:\n  token_file: {tmp_path / 'absent'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ingest\.token_file = .*: Value error, no such file: "):
        load_settings(config)


def test_the_bucket_refills_per_client() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=10.0, burst=50, clock=lambda: now[0])
    assert limiter.take("a", 50) == 0.0
    assert limiter.take("a", 1) == pytest.approx(0.1)
    assert limiter.take("b", 50) == 0.0  # its own bucket
    now[0] += 2.0  # 20 events back
    assert limiter.take("a", 20) == 0.0
    assert limiter.take("a", 5) == pytest.approx(0.5)
    now[0] += 1000.0
    assert limiter.take("a", 51) == pytest.approx(0.1)  # never more than the burst
