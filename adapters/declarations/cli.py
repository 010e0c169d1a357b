"""``eigendossier declare``: write a month's declaration files, read answers, see status.

Every fault a person can cause is named on standard error (the client by internal id,
never a BSN), nothing is written, and the exit code is 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from adapters.declarations.declare import declare, read_answer, status
from adapters.declarations.month import DeclarationError
from adapters.options import DEFAULT_DATABASE, DatabaseUrl
from mappings.core.errors import FhirError
from mappings.core.plugins import DossierOpener

__all__ = ["declare_commands"]

T = TypeVar("T")
_REASON = "declarations to payers (legal basis: the care contract)"

Period = Annotated[str, typer.Option("--period", help="The month: YYYY-MM")]


def _failed(error: DeclarationError, what: str = "declared") -> typer.Exit:
    for fault in error.faults:
        typer.echo(f"{fault.where}: {fault.rule}: {fault.text}", err=True)
    typer.echo(f"Nothing was {what}: {len(error.faults)} fault(s).", err=True)
    return typer.Exit(2)


def declare_commands(open_dossier: DossierOpener) -> typer.Typer:
    """The ``declare`` command group, reaching the dossier through ``open_dossier``."""
    app = typer.Typer(
        help="Declarations: iWmo WMO323, Vektis AW319 and GDS801 files from the visits.",
        no_args_is_help=True,
    )

    def _command(format_code: str, title: str) -> None:
        def command(
            period: Period,
            payer: Annotated[
                str | None,
                typer.Option("--payer", help="One payer: CBS municipality code or UZOVI"),
            ] = None,
            out: Annotated[Path, typer.Option("--out", help="Where the files go")] = Path("."),
            dry_run: Annotated[
                bool, typer.Option("--dry-run", help="Validate and report; record nothing")
            ] = False,
            database_url: DatabaseUrl = DEFAULT_DATABASE,
        ) -> None:
            _write(open_dossier, format_code, period, payer, out, dry_run, database_url)

        command.__doc__ = f"Write the {title} files of a month (one per payer)."
        app.command(format_code)(command)

    _command("wmo323", "iWmo 3.2 WMO323")
    _command("aw319", "Vektis AW319 v1.4")
    _command("gds801", "Vektis GDS801 (unverified against Vecozo)")

    @app.command("read")
    def read(
        file: Annotated[Path, typer.Argument(help="A WMO325 answer")],
        database_url: DatabaseUrl = DEFAULT_DATABASE,
    ) -> None:
        """Read a payer's answer (WMO325) and record it as ClaimResponses."""
        _read(open_dossier, file, database_url)

    @app.command("status")
    def show_status(period: Period, database_url: DatabaseUrl = DEFAULT_DATABASE) -> None:
        """Per payer: what was declared for the month, accepted, rejected and still open."""
        _status(open_dossier, period, database_url)

    return app


def _with_progress(work: Callable[[Callable[[int], None] | None], T]) -> T:
    """Run ``work(tick)`` with a progress bar of visits read on a terminal; quiet otherwise."""
    if not sys.stderr.isatty():
        return work(None)
    from rich.progress import Progress  # noqa: PLC0415

    with Progress(transient=True) as bar:
        task = bar.add_task("visits read", total=None)
        return work(lambda count: bar.advance(task, count))


def _write(
    open_dossier: DossierOpener,
    format_code: str,
    period: str,
    payer: str | None,
    out: Path,
    dry_run: bool,
    database_url: str,
) -> None:
    with open_dossier(database_url, _REASON) as dossier:
        try:
            result = _with_progress(
                lambda tick: declare(
                    dossier,
                    format_code,
                    period,
                    payer=payer,
                    out_dir=out,
                    dry_run=dry_run,
                    progress=tick,
                )
            )
        except DeclarationError as error:
            raise _failed(error) from None
        except FhirError as error:  # the dossier refused what was to be recorded
            typer.echo(f"Nothing was recorded: {error.diagnostics}", err=True)
            raise typer.Exit(2) from None
    plan = result.plan
    for message in result.messages:
        if message.path is not None:
            typer.echo(str(message.path))
    summary = (
        f"{result.visits} visits; {len(plan.debits)} new line(s), {len(plan.credits)} "
        f"credit(s), {plan.unchanged} unchanged, {len(plan.held)} held"
    )
    if dry_run:
        for message in result.messages:
            typer.echo(f"would write {message.name} ({len(message.lines)} lines)")
        summary += "; dry run: no file written, no Claim recorded"
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    typer.echo(f"{summary} ({timings})", err=True)
    for fault in plan.held:
        typer.echo(f"held: {fault.where}: {fault.text}", err=True)


def _read(open_dossier: DossierOpener, file: Path, database_url: str) -> None:
    try:
        data = file.read_bytes()
    except OSError as error:
        typer.echo(f"{file}: cannot be read ({error.strerror})", err=True)
        raise typer.Exit(2) from None
    with open_dossier(database_url, _REASON) as dossier:
        try:
            answer = read_answer(dossier, data)
        except DeclarationError as error:
            raise _failed(error, "recorded") from None
        except FhirError as error:
            typer.echo(f"Nothing was recorded: {error.diagnostics}", err=True)
            raise typer.Exit(2) from None
    codes = ", ".join(f"{code} x{count}" for code, count in sorted(answer.codes.items()))
    typer.echo(
        f"message {answer.message}: {answer.accepted} accepted, {answer.rejected} rejected"
        + (f" ({codes})" if codes else "")
    )


_HEADER = (
    "format",
    "payer",
    "code",
    "lines",
    "accepted",
    "rejected",
    "open",
    "credited",
    "declared EUR",
    "accepted EUR",
)


def _status(open_dossier: DossierOpener, period: str, database_url: str) -> None:
    with open_dossier(database_url, _REASON) as dossier:
        try:
            rows = status(dossier, period)
        except DeclarationError as error:
            raise _failed(error) from None
    if not rows:
        typer.echo("nothing declared for this month")
        return
    typer.echo("\t".join(_HEADER))
    for row in rows:
        cells = (
            row.format,
            row.name or row.payer,
            row.code,
            row.lines,
            row.accepted,
            row.rejected,
            row.open,
            row.credited,
            f"{row.cents_declared / 100:.2f}",
            f"{row.cents_accepted / 100:.2f}",
        )
        typer.echo("\t".join(str(c) for c in cells))
