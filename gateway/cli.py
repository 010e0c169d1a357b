"""The ``eigendossier`` command: ``serve``, ``db``, ``apps``, ``accounts``, ``keys``.

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
from typing import Annotated, Any

import typer

from gateway.settings import DEFAULT_DATABASE_URL, Settings
from mappings.care.base import DEFAULT_BASE

__all__ = ["app", "main"]

app = typer.Typer(help="Eigen Dossier: the client's own FHIR R4 dossier.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
apps_app = typer.Typer(help="OAuth apps allowed to ask for tokens.", no_args_is_help=True)
app.add_typer(apps_app, name="apps")
accounts_app = typer.Typer(help="Logins of the embedded identity provider.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
keys_app = typer.Typer(help="The token signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
conformance_app = typer.Typer(
    help="Our profiles, code systems, value sets, questionnaires.", no_args_is_help=True
)
app.add_typer(conformance_app, name="conformance")
demo_app = typer.Typer(help="A realistic demo dossier.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")

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
    )
    try:
        settings.provider()
    except ValueError as error:
        typer.echo(f"The external login is misconfigured: {error}.", err=True)
        raise typer.Exit(2) from None
    if open_mode:
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


def _security(database_url: str) -> Any:
    from gateway.app import build_services  # noqa: PLC0415
    from gateway.security import build_security  # noqa: PLC0415

    settings = Settings(database_url=database_url, base_url=Settings.env("base_url") or "")
    return build_security(build_services(settings))


BaseUrl = Annotated[
    str,
    typer.Option("--base-url", envvar="EIGENDOSSIER_BASE_URL", help="The gateway's FHIR base"),
]


@apps_app.command("register")
def apps_register(
    name: Annotated[str, typer.Option(help="The app's name, shown to the client")],
    kind: Annotated[str, typer.Option(help="public, confidential or backend")],
    scope: Annotated[str, typer.Option(help="The most it may ask, e.g. 'system/CarePlan.rs'")],
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Repeat for several")] = None,
    jwks: Annotated[
        typer.FileText | None, typer.Option(help="A file with the app's public JWKS")
    ] = None,
    jwks_uri: Annotated[str | None, typer.Option(help="Where the app publishes its JWKS")] = None,
    organization: Annotated[
        str | None, typer.Option(help="The app's organisation: system|value (AGB or URA)")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option(help="v3-PurposeOfUse it acts for (TREAT, HPAYMT, ...)")
    ] = None,
    secret: Annotated[bool, typer.Option(help="Give a confidential app a client secret")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the app as JSON")] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Register an app; the client_id is printed on the last line."""
    import json  # noqa: PLC0415

    from authlib.oauth2.rfc6749.errors import OAuth2Error  # noqa: PLC0415

    security = _security(database_url)
    try:
        keys = json.load(jwks) if jwks is not None else None
        new, client_secret = security.server.new_app(
            name=name,
            kind=kind,
            scopes=scope,
            redirect_uris=redirect_uri or [],
            jwks=keys,
            jwks_uri=jwks_uri,
            organization_identifier=organization,
            purpose=purpose,
            with_secret=secret,
        )
    except (OAuth2Error, ValueError) as error:
        typer.echo(f"Not registered: {getattr(error, 'description', None) or error}", err=True)
        raise typer.Exit(2) from None
    security.store.save_app(new)
    record = new.public_record()
    if client_secret:
        record["client_secret"] = client_secret
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo(f"registered {new.kind} app {new.name!r} ({new.auth_method})")
    if client_secret:
        typer.echo(f"client_secret (shown once): {client_secret}")
    typer.echo(new.client_id)


@apps_app.command("list")
def apps_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """The registered apps: client_id, kind, name, scopes."""
    for entry in _security(database_url).store.apps():
        typer.echo(f"{entry.client_id}\t{entry.kind}\t{entry.name}\t{entry.scopes}")


@accounts_app.command("add")
def accounts_add(
    username: str,
    kind: Annotated[str, typer.Option(help="patient, practitioner or admin")],
    fhir_user: Annotated[
        str | None, typer.Option(help="Patient/ID, Practitioner/ID or PractitionerRole/ID")
    ] = None,
    organization: Annotated[str | None, typer.Option(help="Organization/ID")] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input")
    ] = False,
    external_subject: Annotated[
        str | None,
        typer.Option(
            help="Link the login to this person at the external provider (its claim value); "
            "without --password-stdin the login then has no password here"
        ),
    ] = None,
    oidc_issuer: Annotated[
        str,
        typer.Option(envvar="EIGENDOSSIER_OIDC_ISSUER", help="The external provider's issuer"),
    ] = "",
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Add (or reset) a login; the password is asked for, or read from stdin.

    With --external-subject the person logs in through the external provider instead.
    """
    from consent import federation  # noqa: PLC0415
    from consent.registry import NO_PASSWORD, Account, AccountKind  # noqa: PLC0415
    from consent.secrets import hash_secret  # noqa: PLC0415

    if kind not in AccountKind.ALL:
        typer.echo(f"kind is one of {', '.join(AccountKind.ALL)}", err=True)
        raise typer.Exit(2)
    wanted: dict[str, tuple[str, ...]] = {
        "patient": ("Patient/",),
        "practitioner": ("Practitioner/", "PractitionerRole/"),
    }
    prefix = wanted.get(kind)
    if prefix is not None and not (fhir_user or "").startswith(prefix):
        typer.echo(f"A {kind} login is linked to {prefix}ID (--fhir-user)", err=True)
        raise typer.Exit(2)
    linked = None
    if external_subject is not None:
        if not oidc_issuer:
            typer.echo("--external-subject needs the provider: --oidc-issuer", err=True)
            raise typer.Exit(2)
        linked = federation.external_subject(oidc_issuer, external_subject)
    password_hash = NO_PASSWORD
    if password_stdin or linked is None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        if len(password) < 12:
            typer.echo("A password has at least 12 characters", err=True)
            raise typer.Exit(2)
        password_hash = hash_secret(password)
    security = _security(database_url)
    security.store.save_account(
        Account(username, password_hash, kind, fhir_user, organization, external_subject=linked)
    )
    how = " (logs in through the external provider)" if linked else ""
    typer.echo(f"account {username} ({kind}) saved{how}")


@keys_app.command("rotate")
def keys_rotate(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Add a new generation of signing keys; the one before the previous is retired."""
    from consent.tokens import new_signing_keys  # noqa: PLC0415

    security = _security(database_url)
    security.store.add_signing_keys(new_signing_keys())
    retired = security.store.retire_signing_keys_before(keep=2)
    typer.echo(f"new signing keys added; {retired} old key(s) retired")


def main() -> None:
    app()


if __name__ == "__main__":
    main()


CanonicalBase = Annotated[
    str,
    typer.Option(
        "--canonical-base",
        envvar="EIGENDOSSIER_CANONICAL_BASE",
        help="The base of our canonical URLs (profiles, code systems)",
    ),
]


def _load(database_url: str, canonical_base: str, resources: list[dict[str, Any]]) -> None:
    from gateway.app import build_services  # noqa: PLC0415
    from gateway.loading import load  # noqa: PLC0415
    from mappings.core.errors import FhirError  # noqa: PLC0415

    settings = Settings(database_url=database_url, canonical_base=canonical_base)
    services = build_services(settings)
    try:
        outcome = load(services, resources)
    except FhirError as error:
        where = ", ".join([e for issue in error.issues for e in issue.expression][:3])
        typer.echo(f"Nothing was loaded: {error.diagnostics} ({where})", err=True)
        raise typer.Exit(1) from None
    finally:
        services.store.dispose()
    typer.echo(f"{outcome['created']} created, {outcome['updated']} updated")


@conformance_app.command("load")
def conformance_load(
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    canonical_base: CanonicalBase = DEFAULT_BASE,
) -> None:
    """Load every CodeSystem, ValueSet, ConceptMap, Questionnaire, NamingSystem,
    OperationDefinition and StructureDefinition of the project (one transaction)."""
    from mappings.care.base import Canon  # noqa: PLC0415
    from mappings.care.conformance import conformance_resources  # noqa: PLC0415

    _load(database_url, canonical_base, conformance_resources(Canon(canonical_base)))


@conformance_app.command("export")
def conformance_export(canonical_base: CanonicalBase = DEFAULT_BASE) -> None:
    """Print the conformance resources as a transaction Bundle (JSON) on standard output."""
    import json  # noqa: PLC0415

    from gateway.loading import as_transaction  # noqa: PLC0415
    from mappings.care.base import Canon  # noqa: PLC0415
    from mappings.care.conformance import conformance_resources  # noqa: PLC0415

    bundle = as_transaction(conformance_resources(Canon(canonical_base)))
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
    import datetime as dt  # noqa: PLC0415

    from mappings.care.base import Canon  # noqa: PLC0415
    from mappings.care.demo import demo_dossier  # noqa: PLC0415

    try:
        day = dt.date.fromisoformat(today) if today else dt.date.today()
    except ValueError:
        typer.echo("--today is a date: YYYY-MM-DD", err=True)
        raise typer.Exit(2) from None
    _load(database_url, canonical_base, demo_dossier(day, Canon(canonical_base)))
