"""The ``eigendossier`` command: ``serve``, ``db``, ``apps``, ``accounts``, ``keys``,
``definitions``, ``demo``, ``worker``, ``outbox``, ``index-log``, and the commands of the
installed plugins (``declare``).

Every command that touches the database takes ``--database-url`` (or
``EIGENDOSSIER_DATABASE_URL``); the default is the embedded SQLite file
``./eigendossier.db``. A mistake a person can make is one line and exit code 2.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from gateway.cli.admin import accounts_app, apps_app, keys_app
from gateway.cli.auditlog import index_log
from gateway.cli.data import db_app, definitions_app, demo_app
from gateway.cli.delivery import outbox_app, worker
from gateway.cli.serve import serve
from gateway.plugins import command_line_opener, load_plugins

__all__ = ["app", "main", "package_version"]

app = typer.Typer(
    help="Eigen Dossier: the client's own FHIR R4 dossier.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve)
app.add_typer(db_app, name="db")
app.add_typer(apps_app, name="apps")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(definitions_app, name="definitions")
app.add_typer(demo_app, name="demo")
app.command()(worker)
app.command()(index_log)
app.add_typer(outbox_app, name="outbox")
for _plugin in load_plugins():  # `eigendossier declare ...`, `conformance ...` (ADR 0012)
    if _plugin.commands is not None:
        app.add_typer(_plugin.commands(command_line_opener(_plugin.name)), name=_plugin.name)


def package_version() -> str:
    try:
        return version("eigendossier")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eigendossier {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version"),
    ] = False,
) -> None:
    """Eigen Dossier: the client's own FHIR R4 dossier."""


def main() -> None:
    app()
