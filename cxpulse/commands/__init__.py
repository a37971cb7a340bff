"""Sub-commands of the CLI: one module each, each with ``register(app: typer.Typer)``.

Keep imports of heavy modules (faust, aiokafka) inside the command functions so ``cxpulse --help`` stays fast.

Besides, what several commands do the same way before their work starts (:func:`settings_or_exit`,
:func:`setup_logging`) lives here, in one place, so that a bad configuration fails every command alike (the
message on stderr, exit code 2) and the log format is the same everywhere. They are not in a module of their
own because :mod:`cxpulse.cli` takes every module of this package for a command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from cxpulse.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def settings_or_exit(config: Optional[Path]) -> "Settings":
    """The settings of ``config`` (default ``$CXPULSE_CONFIG``); a :class:`ConfigError` is printed to stderr
    and exits with code 2, so a command never starts on a configuration it cannot read."""
    from cxpulse.settings import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def setup_logging(loglevel: str) -> None:
    """Log at ``loglevel`` (any case, as ``--loglevel`` takes it) in the one format the commands share."""
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)
