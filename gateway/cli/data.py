"""``eigendossier db``, ``definitions`` and ``demo``: the schema and what is loaded into it.

``definitions`` was once called ``conformance``; that name is now the integrators'
conformance kit's (a plugin: ``eigendossier conformance run|check|list``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

from gateway.cli.common import CanonicalBase, DatabaseUrl, fail, opened, services_at
from gateway.settings import DEFAULT_DATABASE_URL
from mappings.care.base import DEFAULT_BASE

__all__ = ["db_app", "definitions_app", "demo_app"]

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
definitions_app = typer.Typer(
    help="Our profiles, code systems, value sets, questionnaires, operations.",
    no_args_is_help=True,
)
demo_app = typer.Typer(help="A realistic demo dossier.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, revision: str = "head") -> None:
    """Apply the schema migrations up to REVISION (default: the newest)."""
    from gateway.store.engine import make_engine  # noqa: PLC0415
    from gateway.store.migrate import upgrade  # noqa: PLC0415

    with opened(database_url):
        engine = make_engine(database_url)
        upgrade(engine, revision)
        engine.dispose()
    typer.echo(f"database at revision {revision}")


@db_app.command("current")
def db_current(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Say whether the schema is at the newest revision (exit 1 when it is not)."""
    from gateway.store.engine import make_engine  # noqa: PLC0415
    from gateway.store.migrate import is_current  # noqa: PLC0415

    with opened(database_url):
        engine = make_engine(database_url)
        current = is_current(engine)
        engine.dispose()
    typer.echo("current" if current else "behind: run `eigendossier db upgrade`")
    raise typer.Exit(0 if current else 1)


def _load(
    database_url: str, canonical_base: str, resources: list[dict[str, Any]], reason: str
) -> None:
    from gateway.loading import load  # noqa: PLC0415
    from mappings.core.errors import FhirError  # noqa: PLC0415

    with opened(database_url), services_at(database_url, canonical_base=canonical_base) as s:
        try:
            outcome = load(s, resources, reason)
        except FhirError as error:
            where = ", ".join([e for issue in error.issues for e in issue.expression][:3])
            typer.echo(f"Nothing was loaded: {error.diagnostics} ({where})", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"{outcome['created']} created, {outcome['updated']} updated")


def _definitions(canonical_base: str) -> list[dict[str, Any]]:
    from mappings.care.base import Canon  # noqa: PLC0415
    from mappings.care.definitions import definition_resources  # noqa: PLC0415

    return definition_resources(Canon(canonical_base))


@definitions_app.command("load")
def definitions_load(
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    canonical_base: CanonicalBase = DEFAULT_BASE,
) -> None:
    """Load every CodeSystem, ValueSet, ConceptMap, Questionnaire, NamingSystem,
    OperationDefinition and StructureDefinition of the project (one transaction)."""
    _load(database_url, canonical_base, _definitions(canonical_base), "definitions load")


@definitions_app.command("export")
def definitions_export(canonical_base: CanonicalBase = DEFAULT_BASE) -> None:
    """Print the definitions as a transaction Bundle (JSON) on standard output."""
    from gateway.loading import as_transaction  # noqa: PLC0415

    bundle = as_transaction(_definitions(canonical_base))
    typer.echo(json.dumps(bundle, ensure_ascii=False, indent=1))


@demo_app.command("load")
def demo_load(
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    canonical_base: CanonicalBase = DEFAULT_BASE,
    today: Annotated[
        str | None, typer.Option(help="The demo's today (YYYY-MM-DD); default: today")
    ] = None,
) -> None:
    """Seed Anna Jansen's dossier: krachtplan, three ZRM measurements, visits, a crisis
    plan with her daughter, her GP practice and care team (ids as in the README)."""
    from mappings.care.base import Canon  # noqa: PLC0415
    from mappings.care.demo import demo_dossier  # noqa: PLC0415

    try:
        day = dt.date.fromisoformat(today) if today else dt.date.today()
    except ValueError:
        fail("--today is a date: YYYY-MM-DD")
    _load(database_url, canonical_base, demo_dossier(day, Canon(canonical_base)), "demo load")
