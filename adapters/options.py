"""The command-line options every adapter's commands share with the gateway's own."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["DEFAULT_DATABASE", "DatabaseUrl"]

DEFAULT_DATABASE = "sqlite:///eigendossier.db"

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="EIGENDOSSIER_DATABASE_URL",
        help="SQLAlchemy URL: sqlite:///path.db (default) or postgresql+psycopg://user@host/db",
    ),
]
