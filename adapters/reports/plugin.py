"""The outcome reports as a gateway plugin: ``eigendossier report outcomes`` and
``POST [base]/$evaluate-measure`` (entry point ``eigendossier.plugins: reports``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from adapters.options import DEFAULT_DATABASE, DatabaseUrl
from adapters.reports.outcomes import report_outcomes
from mappings.care.base import DEFAULT_CANON
from mappings.care.outcomes import MIN_CELL
from mappings.core.errors import FhirError, Unprocessable
from mappings.core.plugins import Dossier, DossierOpener, Operation, OperationCall, Plugin

__all__ = ["PLUGIN", "evaluate_measure"]

_REASON = "outcome reports (ZRM, per team and neighbourhood; no client named)"
_MEASURE = DEFAULT_CANON.url("Measure", "zrm-outcomes")


def evaluate_measure(dossier: Dossier, call: OperationCall) -> dict[str, Any]:
    """``$evaluate-measure``: the quarter's MeasureReports, recorded, as a collection."""
    values = call.parameters
    measure = (values.get("measure") or [_MEASURE])[0]
    if measure not in (_MEASURE, "zrm-outcomes"):
        raise Unprocessable("The measure here is zrm-outcomes (ZRM outcomes)", "measure")
    period = (values.get("period") or [None])[0]
    if not isinstance(period, str):
        raise Unprocessable("period is a quarter: YYYY-Qn", "period")
    reported = report_outcomes(dossier, period)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{call.base_url}/MeasureReport/{r['id']}", "resource": r}
            for r in reported.reports
        ],
    }


def report_commands(open_dossier: DossierOpener) -> typer.Typer:
    app = typer.Typer(help="Outcome reports: ZRM outcomes per team and neighbourhood.")

    @app.command("outcomes")
    def outcomes(
        period: Annotated[str, typer.Option("--period", help="The quarter: YYYY-Qn")],
        database_url: DatabaseUrl = DEFAULT_DATABASE,
    ) -> None:
        """Write the quarter's MeasureReports (all, per team, per neighbourhood) to the
        dossier and print them in one line each; counts under 5 are suppressed."""
        with open_dossier(database_url, _REASON) as dossier:
            try:
                reported = report_outcomes(dossier, period)
            except FhirError as error:
                typer.echo(f"No report: {error.diagnostics}", err=True)
                raise typer.Exit(2) from None
        count = reported.clients if reported.clients >= MIN_CELL else f"fewer than {MIN_CELL}"
        typer.echo(f"{reported.quarter.text}: {count} clients with a follow-up")
        for report in reported.reports:
            shown = sum(1 for g in report["group"] if "measureScore" in g)
            typer.echo(
                f"MeasureReport/{report['id']}: {shown} of {len(report['group'])} domains "
                "reported (the others suppressed: fewer than 5 clients)"
            )

    return app


PLUGIN = Plugin(
    name="report",
    commands=report_commands,
    operations=(
        Operation(
            name="evaluate-measure",
            definition=DEFAULT_CANON.url("OperationDefinition", "evaluate-measure"),
            scope="system/MeasureReport.c",
            reason=_REASON,
            run=evaluate_measure,
        ),
    ),
)
