"""The Omaha export as a gateway plugin: ``eigendossier omaha export`` and
``POST [base]/$omaha-export`` (entry point ``eigendossier.plugins: omaha``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.backoffice.omaha import export_omaha, write_omaha_file
from adapters.options import DEFAULT_DATABASE, DatabaseUrl
from mappings.care.base import DEFAULT_CANON
from mappings.core.errors import FhirError, Issue, Unprocessable, operation_outcome
from mappings.core.plugins import (
    Dossier,
    DossierOpener,
    Operation,
    OperationCall,
    Plugin,
)

__all__ = ["PLUGIN", "omaha_export_operation"]

_REASON = "the Omaha export to the care provider's back office (legal basis: the care contract)"


def _one(call: OperationCall, name: str, kind: type) -> Any:
    values = call.parameters.get(name, [])
    if len(values) > 1:
        raise Unprocessable(f"$omaha-export takes one {name}", name)
    value = values[0] if values else None
    if kind is int and isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)  # in a query string: text
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise Unprocessable(f"{name} is {'an integer' if kind is int else 'a string'}", name)
    return value


def omaha_export_operation(dossier: Dossier, call: OperationCall) -> dict[str, Any]:
    """``$omaha-export``: the records left in the outbox; an OperationOutcome of the counts."""
    period, destination = _one(call, "period", str), _one(call, "destination", str)
    if period is None or destination is None:
        raise Unprocessable("$omaha-export takes period and destination", "period")
    team, per_message = _one(call, "team", str), _one(call, "per-message", int)
    done = export_omaha(dossier, period, destination, team=team, per_message=per_message or 1000)
    text = (
        f"{done.visits} visits of {done.clients} clients in {done.messages} message(s) for "
        f"'{destination}'; {done.new} new in the outbox"
    )
    return operation_outcome([Issue("information", "informational", text)])


def omaha_commands(open_dossier: DossierOpener) -> typer.Typer:
    app = typer.Typer(
        help="The Omaha System export to the back office: problems, interventions, KBS.",
        no_args_is_help=True,
    )

    @app.command("export")
    def export(
        period: Annotated[str, typer.Option("--period", help="A month YYYY-MM or a day")],
        to: Annotated[
            str | None,
            typer.Option("--to", help="A configured destination (EIGENDOSSIER_DESTINATION_<NAME>)"),
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Write the NDJSON to this file instead of sending it"),
        ] = None,
        team: Annotated[
            str | None, typer.Option("--team", help="One team: its Organization id")
        ] = None,
        per_message: Annotated[
            int, typer.Option("--per-message", help="Visits per message", min=1, max=10_000)
        ] = 1000,
        database_url: DatabaseUrl = DEFAULT_DATABASE,
    ) -> None:
        """Send the finished visits of a period, Omaha-coded, to the back office (through
        the outbox: the delivery worker sends them), or write them to a file."""
        if (to is None) == (out is None):
            typer.echo("Say where the export goes: --to DESTINATION or --out FILE.", err=True)
            raise typer.Exit(2)
        with open_dossier(database_url, _REASON) as dossier:
            try:
                if out is not None:
                    visits, clients = write_omaha_file(dossier, period, out, team=team)
                    typer.echo(f"{out}: {visits} visits of {clients} clients")
                    return
                assert to is not None
                done = export_omaha(dossier, period, to, team=team, per_message=per_message)
            except FhirError as error:
                typer.echo(f"Nothing was exported: {error.diagnostics}", err=True)
                raise typer.Exit(2) from None
        typer.echo(
            f"{done.visits} visits of {done.clients} clients in {done.messages} message(s) "
            f"for '{to}': {done.new} new in the outbox"
            + ("" if done.new == done.messages else " (the others were sent before)")
        )

    return app


PLUGIN = Plugin(
    name="omaha",
    commands=omaha_commands,
    operations=(
        Operation(
            name="omaha-export",
            definition=DEFAULT_CANON.url("OperationDefinition", "omaha-export"),
            scope="system/Encounter.rs",
            reason=_REASON,
            run=omaha_export_operation,
        ),
    ),
)
