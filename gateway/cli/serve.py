"""``eigendossier serve``: run the gateway."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from typing import Annotated

import typer

from gateway.cli.auditlog import MODES, indexer_mode, indexing
from gateway.cli.common import DatabaseUrl, fail, opened
from gateway.http.protocol import ConnectionLimits, GuardedHttpProtocol, configure
from gateway.settings import DEFAULT_DATABASE_URL, Settings
from mappings.care.base import DEFAULT_BASE

__all__ = ["serve"]

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
    canonical_base: Annotated[
        str,
        typer.Option(
            "--canonical-base",
            envvar="EIGENDOSSIER_CANONICAL_BASE",
            help="The base of our canonical URLs (profiles, code systems)",
        ),
    ] = DEFAULT_BASE,
    oidc_issuer: Annotated[
        str,
        typer.Option(
            envvar="EIGENDOSSIER_OIDC_ISSUER",
            help="An external OpenID Connect provider's issuer (a DigiD broker, say)",
        ),
    ] = "",
    oidc_client_id: Annotated[
        str, typer.Option(envvar="EIGENDOSSIER_OIDC_CLIENT_ID", help="Our client id there")
    ] = "",
    oidc_client_secret_file: Annotated[
        typer.FileText | None,
        typer.Option(
            help="A file holding our client secret there "
            "(or set EIGENDOSSIER_OIDC_CLIENT_SECRET; never on the command line)"
        ),
    ] = None,
    oidc_name: Annotated[
        str, typer.Option(envvar="EIGENDOSSIER_OIDC_NAME", help="Its name on the login page")
    ] = "OpenID Connect",
    oidc_scope: Annotated[str, typer.Option(envvar="EIGENDOSSIER_OIDC_SCOPE")] = "openid",
    oidc_claim: Annotated[
        str,
        typer.Option(envvar="EIGENDOSSIER_OIDC_CLAIM", help="The ID token claim naming the person"),
    ] = "sub",
    oidc_link: Annotated[
        str,
        typer.Option(
            envvar="EIGENDOSSIER_OIDC_LINK",
            help="account: only logins linked with `accounts add --external-subject`; "
            "bsn: the claim is the client's BSN, matched to Patient.identifier",
        ),
    ] = "account",
    cors_origins: Annotated[
        str,
        typer.Option(
            envvar="EIGENDOSSIER_CORS_ORIGINS",
            help="Browser origins allowed besides registered apps' (comma-separated)",
        ),
    ] = "",
    max_header_bytes: Annotated[
        int, typer.Option(envvar="EIGENDOSSIER_MAX_HEADER_BYTES", help="Request line + headers")
    ] = 32 * 1024,
    max_headers: Annotated[int, typer.Option(envvar="EIGENDOSSIER_MAX_HEADERS")] = 100,
    header_timeout: Annotated[
        float, typer.Option(envvar="EIGENDOSSIER_HEADER_TIMEOUT", help="Seconds for the headers")
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(envvar="EIGENDOSSIER_BODY_TIMEOUT", help="Seconds a body may pause"),
    ] = 30.0,
    max_connections: Annotated[
        int, typer.Option(envvar="EIGENDOSSIER_MAX_CONNECTIONS", help="Open at once, per process")
    ] = 1000,
    reader_threads: Annotated[
        int,
        typer.Option(
            envvar="EIGENDOSSIER_READER_THREADS",
            help="Reads and searches at once, per process (0: 2 on SQLite, 40 on PostgreSQL)",
        ),
    ] = 0,
    log_indexer: Annotated[
        str,
        typer.Option(
            envvar="EIGENDOSSIER_LOG_INDEXER",
            help="Where the access log is indexed: auto or process (a process of its own "
            "beside the gateway's), thread (a thread of each gateway process), or none (run "
            "`eigendossier index-log` apart)",
        ),
    ] = "auto",
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            envvar="EIGENDOSSIER_NO_WORKER",
            help="Deliver nothing here: run `eigendossier worker` apart",
        ),
    ] = False,
) -> None:
    """Run the gateway; prints the FHIR base URL."""
    import uvicorn  # noqa: PLC0415

    from gateway.app import create_app  # noqa: PLC0415

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    indexing_mode = indexer_mode(log_indexer)
    settings = Settings(
        database_url=database_url,
        host=host,
        port=port,
        base_url=base_url,
        log_level=log_level,
        open_mode=open_mode,
        max_body_bytes=max_body_bytes,
        canonical_base=canonical_base,
        oidc_issuer=oidc_issuer,
        oidc_client_id=oidc_client_id,
        oidc_client_secret=(
            oidc_client_secret_file.read().strip()
            if oidc_client_secret_file is not None
            else Settings.env("oidc_client_secret") or ""
        ),
        oidc_name=oidc_name,
        oidc_scope=oidc_scope,
        oidc_claim=oidc_claim,
        oidc_link=oidc_link,
        cors_origins=tuple(o.strip() for o in cors_origins.split(",") if o.strip()),
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        delivery_worker=not no_worker,
        reader_threads=reader_threads,
        log_indexer_thread=indexing_mode == "thread",
    )
    if (
        min(max_header_bytes, max_headers, max_connections) < 1
        or min(header_timeout, body_timeout) <= 0
    ):
        fail("The connection limits are positive numbers")
    if reader_threads < 0:
        fail("--reader-threads is a positive number (or 0 for the default)")
    if log_indexer not in MODES:
        fail(f"--log-indexer is one of {', '.join(MODES)}")
    configure(
        ConnectionLimits(
            max_header_bytes, max_headers, header_timeout, body_timeout, max_connections
        )
    )
    try:
        settings.provider()
    except ValueError as error:
        fail(f"The external login is misconfigured: {error}.")
    if open_mode:
        if not _is_loopback(host):
            fail(f"Refusing to start: --open binds only to loopback, not {host}.")
        log.warning(
            "OPEN MODE: no authentication, every request sees every dossier. "
            "Development only; bound to %s.",
            host,
        )
    # on SQLite the access log's indexer runs beside the gateway, and stops after it; it
    # starts first, and loads what it needs while the gateway does (it waits for the schema)
    with indexing(indexing_mode, settings, log_level) as indexer:
        with opened(database_url):
            application = create_app(settings)
        if indexer is not None:
            indexer.wait_ready()
        typer.echo(f"Eigen Dossier FHIR base: {settings.public_base_url}")
        sys.stdout.flush()
        if workers == 1:
            uvicorn.run(
                application,
                host=host,
                port=port,
                log_level=log_level.lower(),
                access_log=False,
                http=GuardedHttpProtocol,
            )
            return
        application.state.services.store.dispose()
        os.environ.update(
            {
                "EIGENDOSSIER_DATABASE_URL": database_url,
                "EIGENDOSSIER_HOST": host,
                "EIGENDOSSIER_PORT": str(port),
                "EIGENDOSSIER_BASE_URL": settings.public_base_url,
                "EIGENDOSSIER_OPEN": "1" if open_mode else "0",
                "EIGENDOSSIER_MAX_BODY_BYTES": str(max_body_bytes),
                "EIGENDOSSIER_LOG_LEVEL": log_level,
                "EIGENDOSSIER_CANONICAL_BASE": settings.canonical_base,
                "EIGENDOSSIER_OIDC_ISSUER": settings.oidc_issuer,
                "EIGENDOSSIER_OIDC_CLIENT_ID": settings.oidc_client_id,
                "EIGENDOSSIER_OIDC_CLIENT_SECRET": settings.oidc_client_secret,
                "EIGENDOSSIER_OIDC_NAME": settings.oidc_name,
                "EIGENDOSSIER_OIDC_SCOPE": settings.oidc_scope,
                "EIGENDOSSIER_OIDC_CLAIM": settings.oidc_claim,
                "EIGENDOSSIER_OIDC_LINK": settings.oidc_link,
                "EIGENDOSSIER_CORS_ORIGINS": ",".join(settings.cors_origins),
                "EIGENDOSSIER_MAX_HEADER_BYTES": str(max_header_bytes),
                "EIGENDOSSIER_MAX_HEADERS": str(max_headers),
                "EIGENDOSSIER_HEADER_TIMEOUT": str(header_timeout),
                "EIGENDOSSIER_BODY_TIMEOUT": str(body_timeout),
                "EIGENDOSSIER_MAX_CONNECTIONS": str(max_connections),
                "EIGENDOSSIER_DELIVERY_WORKER": "0" if no_worker else "1",
                "EIGENDOSSIER_READER_THREADS": str(reader_threads),
                "EIGENDOSSIER_LOG_INDEXER_THREAD": "1" if settings.log_indexer_thread else "0",
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
            http=GuardedHttpProtocol,
        )
