"""``python -m lway_engine`` runs the CLI."""

from lway_engine.cli import app

app()
