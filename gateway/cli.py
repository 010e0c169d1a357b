"""The ``eigendossier`` command: ``serve``, ``db upgrade``, ``db current``.

Every command that touches the database takes ``--database-url`` (or
``EIGENDOSSIER_DATABASE_URL``); the default is the embedded SQLite file
``./eigendossier.db``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from typing import Annotated

import typer

from gateway.settings import DEFAULT_DATABASE_URL, Settings

__all__ = ["app", "main"]

app = typer.Typer(help="Eigen Dossier: the client's own FHIR R4 dossier.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="EIGENDOSSIER_DATABASE_URL",
        help="SQLAlchemy URL: sqlite:///path.db (default) or postgresql+psycopg://user@host/db",
    ),
]
log = logging.getLogger("eigendossier")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


@app.command()
def serve(
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    host: Annotated[str, typer.Option(envvar="EIGENDOSSIER_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="EIGENDOSSIER_PORT")] = 8080,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            envvar="EIGENDOSSIER_BASE_URL",
            help="Public FHIR base URL used in links (default http://HOST:PORT/fhir)",
        ),
    ] = "",
    log_level: Annotated[str, typer.Option(envvar="EIGENDOSSIER_LOG_LEVEL")] = "info",
    open_mode: Annotated[
        bool, typer.Option("--open", help="Development mode without authentication; loopback only")
    ] = False,
    max_body_bytes: Annotated[int, typer.Option(envvar="EIGENDOSSIER_MAX_BODY_BYTES")] = (
        16 * 1024 * 1024
    ),
    workers: Annotated[
        int,
        typer.Option(envvar="EIGENDOSSIER_WORKERS", help="Gateway processes sharing the database"),
    ] = 1,
) -> None:
    """Run the gateway; prints the FHIR base URL."""
    import uvicorn  # noqa: PLC0415

    from gateway.app import SchemaBehind, create_app  # noqa: PLC0415

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = Settings(
        database_url=database_url,
        host=host,
        port=port,
        base_url=base_url,
        log_level=log_level,
        open_mode=open_mode,
        max_body_bytes=max_body_bytes,
    )
    if not open_mode:
        typer.echo(
            "Refusing to start: no authorization server is configured. "
            "Use --open for the loopback-only development mode.",
            err=True,
        )
        raise typer.Exit(2)
    if not _is_loopback(host):
        typer.echo(f"Refusing to start: --open binds only to loopback, not {host}.", err=True)
        raise typer.Exit(2)
    log.warning(
        "OPEN MODE: no authentication, every request sees every dossier. "
        "Development only; bound to %s.",
        host,
    )
    try:
        application = create_app(settings)
    except SchemaBehind as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Eigen Dossier FHIR base: {settings.public_base_url}")
    sys.stdout.flush()
    if workers == 1:
        uvicorn.run(
            application, host=host, port=port, log_level=log_level.lower(), access_log=False
        )
        return
    application.state.services.store.dispose()
    os.environ.update(
        {
            "EIGENDOSSIER_DATABASE_URL": database_url,
            "EIGENDOSSIER_HOST": host,
            "EIGENDOSSIER_PORT": str(port),
            "EIGENDOSSIER_BASE_URL": settings.public_base_url,
            "EIGENDOSSIER_OPEN": "1",
            "EIGENDOSSIER_MAX_BODY_BYTES": str(max_body_bytes),
            "EIGENDOSSIER_LOG_LEVEL": log_level,
        }
    )
    uvicorn.run(
        "gateway.asgi:from_environment",
        factory=True,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        workers=workers,
    )


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, revision: str = "head") -> None:
    """Apply the schema migrations up to REVISION (default: the newest)."""
    from gateway.store.engine import make_engine  # noqa: PLC0415
    from gateway.store.migrate import upgrade  # noqa: PLC0415

    engine = make_engine(database_url)
    upgrade(engine, revision)
    engine.dispose()
    typer.echo(f"database at revision {revision}")


@db_app.command("current")
def db_current(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Say whether the schema is at the newest revision (exit 1 when it is not)."""
    from gateway.store.engine import make_engine  # noqa: PLC0415
    from gateway.store.migrate import is_current  # noqa: PLC0415

    engine = make_engine(database_url)
    current = is_current(engine)
    engine.dispose()
    typer.echo("current" if current else "behind: run `eigendossier db upgrade`")
    raise typer.Exit(0 if current else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
