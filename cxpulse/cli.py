"""The ``cxpulse`` command line.

Each sub-command lives in its own module of :mod:`cxpulse.commands` with a ``register(app)`` function, and
is found here by discovery, so adding a command never means editing a shared file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import cxpulse.commands as _commands

app = typer.Typer(
    name="cxpulse",
    help="Real-time contact-centre KPIs from Kafka events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)



@app.callback()
def _root() -> None:
    """Real-time contact-centre KPIs from Kafka events."""


for _info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
    importlib.import_module(f"{_commands.__name__}.{_info.name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
