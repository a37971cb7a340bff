"""Sub-commands of the CLI: one module each, each with ``register(app: typer.Typer)``.

Keep imports of heavy modules (faust, aiokafka) inside the command functions so ``cxpulse --help`` stays fast.
"""
