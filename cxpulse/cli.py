"""The ``cxpulse`` command line.

Each sub-command lives in its own module of :mod:`cxpulse.commands` with a ``register(app)`` function, and
is found here by discovery, so adding a command never means editing a shared file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import cxpulse
import cxpulse.commands as _commands

app = typer.Typer(
    name="cxpulse",
    help="Real-time contact-centre KPIs from Kafka events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    """Eager ``--version``: answers before any sub-command or settings are looked at."""
    if value:
        typer.echo(f"cxpulse {cxpulse.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Real-time contact-centre KPIs from Kafka events."""


# The order ``--help`` lists the commands in: the order a new user needs them (run the engine, feed it, look at
# it, then the offline tools). A module not named here (a new command) follows, alphabetically.
COMMAND_ORDER = (
    "worker", "wallboard", "simulate", "produce", "source", "ingest", "replay", "schema", "import_anonymous_bank",
)


def _rank(name: str) -> tuple[int, str]:
    return (COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER), name)


for _info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: _rank(m.name)):
    importlib.import_module(f"{_commands.__name__}.{_info.name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
