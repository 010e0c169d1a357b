"""What the commands share: the options, one-line errors, the database behind a command.

Every failure a person can cause (a wrong option, a database URL that does not work, an
unknown app or login) is one line on standard error and exit code 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.interactions.model import Services
    from gateway.security import Security

__all__ = [
    "BaseUrl",
    "CanonicalBase",
    "DatabaseUrl",
    "fail",
    "opened",
    "security_at",
    "services_at",
]

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="EIGENDOSSIER_DATABASE_URL",
        help="SQLAlchemy URL: sqlite:///path.db (default) or postgresql+psycopg://user@host/db",
    ),
]
CanonicalBase = Annotated[
    str,
    typer.Option(
        "--canonical-base",
        envvar="EIGENDOSSIER_CANONICAL_BASE",
        help="The base of our canonical URLs (profiles, code systems)",
    ),
]
BaseUrl = Annotated[
    str,
    typer.Option("--base-url", envvar="EIGENDOSSIER_BASE_URL", help="The gateway's FHIR base"),
]


def fail(message: str) -> NoReturn:
    """One line on standard error, exit code 2."""
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _shown(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url[:80]


@contextmanager
def opened(database_url: str) -> Iterator[None]:
    """Turn what a wrong ``--database-url`` raises into one line and exit code 2.

    The line names the URL (without password) and the kind of fault, never a statement.
    """
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError  # noqa: PLC0415

    from gateway.app import SchemaBehind  # noqa: PLC0415

    where = _shown(database_url)
    try:
        yield
    except NoSuchModuleError:
        fail(f"{where}: not a database this gateway knows (sqlite or postgresql+psycopg)")
    except ArgumentError:
        fail(f"{where!r} is not a database URL (sqlite:///path.db or postgresql+psycopg://...)")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith(("psycopg", "asyncpg")):
            fail(f"{where}: PostgreSQL needs its drivers: pip install 'eigendossier[postgres]'")
        raise
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0][:200] if error.orig else "no answer"
        fail(f"{where}: the database cannot be opened ({reason})")
    except SchemaBehind as error:
        fail(str(error))


@contextmanager
def services_at(
    database_url: str, *, canonical_base: str = "", base_url: str = ""
) -> Iterator[Services]:
    """The gateway's services on ``database_url``, disposed of afterwards (use inside
    :func:`opened`)."""
    from gateway.app import build_services  # noqa: PLC0415

    settings = Settings(database_url=database_url, base_url=base_url)
    if canonical_base:
        settings = dataclasses.replace(settings, canonical_base=canonical_base)
    services = build_services(settings)
    try:
        yield services
    finally:
        services.store.dispose()


@contextmanager
def security_at(database_url: str) -> Iterator[Security]:
    """The authorization server's side of the gateway on ``database_url``."""
    from gateway.security import build_security  # noqa: PLC0415

    with services_at(database_url, base_url=Settings.env("base_url") or "") as services:
        yield build_security(services)
