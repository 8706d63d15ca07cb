"""The ``fsql`` command line."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """fsql: a SQL-first feature store."""
