"""Named boards and who may open them: queues, metrics, order, display names, tile size, tokens.

Why on the server and not only in the page: a board's token is checked before anything is sent, and the
document a page receives holds only its board's queues, so a supervisor group's view cannot be read by
changing the URL (``?queues=`` narrows a board, never widens it).

The board without a name (``/``) shows every queue; it needs the global token when one is set. A named board
needs its own token (``token`` or ``token_file``) or the global one. A token is passed once as ``?token=`` and
kept in an HttpOnly cookie (``cxpulse_token`` for the global token, ``cxpulse_token_<board>`` for a board's).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cxpulse.settings import TILE_METRICS, BoardSettings, Settings

DEFAULT_BOARD = ""
GLOBAL_COOKIE = "cxpulse_token"


def _token(value: object, path: str | None) -> str | None:
    """A token from settings (SecretStr) or the first line of a file (read once, at start)."""
    if path is not None:
        text = Path(path).read_text(encoding="utf-8").strip().splitlines()
        return text[0].strip() if text and text[0].strip() else None
    if value is None:
        return None
    secret = value.get_secret_value()  # type: ignore[attr-defined]
    return secret or None


@dataclass(frozen=True)
class Board:
    """One board as the server uses it (tokens resolved)."""

    name: str
    title: str
    queues: tuple[str, ...] | None  # None: every queue
    metrics: tuple[str, ...] = TILE_METRICS
    display_names: dict[str, str] = field(default_factory=dict)
    tile_size: str = "auto"
    token: str | None = None  # this board's own token (the global one opens it too)

    @property
    def cookie(self) -> str:
        return f"{GLOBAL_COOKIE}_{self.name}" if self.name else GLOBAL_COOKIE

    def queues_for(self, requested: list[str] | None) -> list[str] | None:
        """The queues shown: the board's, narrowed by ``?queues=`` (None: every queue)."""
        if self.queues is None:
            return requested
        if requested is None:
            return list(self.queues)
        return [q for q in self.queues if q in requested]

    def public(self) -> dict[str, object]:
        """What the page may know of its board (no token)."""
        return {"name": self.name, "title": self.title, "queues": list(self.queues) if self.queues else None,
                "metrics": list(self.metrics), "display_names": self.display_names, "tile_size": self.tile_size}


class Boards:
    """Every board of the settings plus the unnamed one, and the access rule."""

    def __init__(self, settings: Settings) -> None:
        wb = settings.wallboard
        self.global_token = _token(wb.token, wb.token_file)
        self.admin_token = _token(wb.admin_token, None) or self.global_token
        self.by_name: dict[str, Board] = {DEFAULT_BOARD: Board(DEFAULT_BOARD, "All queues", None)}
        for name, board in wb.boards.items():
            self.by_name[name] = self._board(name, board)

    @staticmethod
    def _board(name: str, b: BoardSettings) -> Board:
        return Board(name=name, title=b.title or name, queues=tuple(b.queues) if b.queues else None,
                     metrics=tuple(b.metrics), display_names=dict(b.display_names), tile_size=b.tile_size,
                     token=_token(b.token, b.token_file))

    def get(self, name: str | None) -> Board | None:
        return self.by_name.get(name or DEFAULT_BOARD)

    def names(self) -> list[str]:
        return [name for name in self.by_name if name]

    def needs_token(self, board: Board) -> bool:
        return board.token is not None or self.global_token is not None

    def accepts(self, board: Board, presented: str | None) -> bool:
        """Whether ``presented`` opens ``board`` (constant-time comparisons)."""
        if not self.needs_token(board):
            return True
        if not presented:
            return False
        ok = False
        for token in (board.token, self.global_token):
            if token is not None and hmac.compare_digest(token.encode(), presented.encode()):
                ok = True
        return ok

    def cookie_for(self, board: Board, presented: str) -> str:
        """The cookie that keeps ``presented``: the global one when it is the global token."""
        if self.global_token is not None and hmac.compare_digest(self.global_token.encode(), presented.encode()):
            return GLOBAL_COOKIE
        return board.cookie

    def admin_accepts(self, presented: str | None) -> bool:
        if self.admin_token is None:
            return True
        return presented is not None and hmac.compare_digest(self.admin_token.encode(), presented.encode())


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
