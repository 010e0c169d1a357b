"""``eigendossier apps``, ``accounts`` and ``keys``: who may ask for tokens, and how."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from typing import Annotated

import typer

from gateway.cli.common import DatabaseUrl, fail, opened, security_at
from gateway.settings import DEFAULT_DATABASE_URL

__all__ = ["accounts_app", "apps_app", "keys_app"]

apps_app = typer.Typer(help="OAuth apps allowed to ask for tokens.", no_args_is_help=True)
accounts_app = typer.Typer(help="Logins of the embedded identity provider.", no_args_is_help=True)
keys_app = typer.Typer(help="The token signing keys.", no_args_is_help=True)

#: which fhirUser each kind of login is linked to
_FHIR_USER = {
    "patient": ("Patient/",),
    "practitioner": ("Practitioner/", "PractitionerRole/"),
    "related-person": ("RelatedPerson/",),
}


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
    from authlib.oauth2.rfc6749.errors import OAuth2Error  # noqa: PLC0415

    try:
        keys = json.load(jwks) if jwks is not None else None
    except ValueError:
        fail("--jwks is not a JSON file")
    with opened(database_url), security_at(database_url) as security:
        try:
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
            fail(f"Not registered: {getattr(error, 'description', None) or error}")
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
    """The registered apps: client_id, kind, name, scopes, and whether disabled."""
    with opened(database_url), security_at(database_url) as security:
        found = security.store.apps()
    for entry in found:
        state = "" if entry.active else "\tdisabled"
        typer.echo(f"{entry.client_id}\t{entry.kind}\t{entry.name}\t{entry.scopes}{state}")


@apps_app.command("disable")
def apps_disable(client_id: str, database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Stop an app: no new tokens, and the tokens it holds stop working at once."""
    _set_active(client_id, database_url, active=False)


@apps_app.command("enable")
def apps_enable(client_id: str, database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Let a disabled app ask for tokens again (the people it served log in anew)."""
    _set_active(client_id, database_url, active=True)


def _set_active(client_id: str, database_url: str, *, active: bool) -> None:
    with opened(database_url), security_at(database_url) as security:
        store = security.store
        found = store.app(client_id)
        if found is None:
            fail(f"No app {client_id!r}; see `eigendossier apps list`")
        store.save_app(dataclasses.replace(found, active=active))
        revoked = 0 if active else store.revoke_authorizations_of_app(client_id)
    state = "enabled" if active else f"disabled ({revoked} authorization(s) revoked)"
    typer.echo(f"app {client_id} {state}")


@apps_app.command("remove")
def apps_remove(client_id: str, database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Remove an app; every authorization given to it is revoked."""
    with opened(database_url), security_at(database_url) as security:
        removed = security.store.remove_app(client_id)
    if not removed:
        fail(f"No app {client_id!r}; see `eigendossier apps list`")
    typer.echo(f"app {client_id} removed")


@accounts_app.command("add")
def accounts_add(
    username: str,
    kind: Annotated[str, typer.Option(help="patient, practitioner, related-person or admin")],
    fhir_user: Annotated[
        str | None,
        typer.Option(help="Patient/ID, Practitioner/ID, PractitionerRole/ID or RelatedPerson/ID"),
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
        fail(f"--kind is one of {', '.join(AccountKind.ALL)}")
    prefixes = _FHIR_USER.get(kind)
    if prefixes is not None and not (fhir_user or "").startswith(prefixes):
        wanted = " or ".join(f"{p}ID" for p in prefixes)
        fail(f"A {kind} login is linked to its FHIR user: --fhir-user {wanted}")
    linked = None
    if external_subject is not None:
        if not oidc_issuer:
            fail("--external-subject needs the provider: --oidc-issuer")
        linked = federation.external_subject(oidc_issuer, external_subject)
    password_hash = NO_PASSWORD
    if password_stdin or linked is None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        if len(password) < 12:
            fail("A password has at least 12 characters")
        password_hash = hash_secret(password)
    with opened(database_url), security_at(database_url) as security:
        security.store.save_account(
            Account(username, password_hash, kind, fhir_user, organization, external_subject=linked)
        )
    how = " (logs in through the external provider)" if linked else ""
    typer.echo(f"account {username} ({kind}) saved{how}")


@accounts_app.command("list")
def accounts_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """The logins: username, kind, FHIR user, and whether locked or external."""
    from consent.registry import NO_PASSWORD  # noqa: PLC0415

    with opened(database_url), security_at(database_url) as security:
        found = security.store.accounts()
    now = dt.datetime.now(dt.UTC)
    for entry in found:
        notes = []
        if entry.locked_until is not None and entry.locked_until > now:
            notes.append("locked")
        if entry.external_subject:
            notes.append("external login")
        if entry.password_hash == NO_PASSWORD:
            notes.append("no password")
        line = f"{entry.username}\t{entry.kind}\t{entry.user or '-'}"
        typer.echo(line + (f"\t{', '.join(notes)}" if notes else ""))


@accounts_app.command("unlock")
def accounts_unlock(username: str, database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Lift the lock after too many failed logins."""
    with opened(database_url), security_at(database_url) as security:
        store = security.store
        if store.account(username) is None:
            fail(f"No login {username!r}; see `eigendossier accounts list`")
        store.login_succeeded(username)
    typer.echo(f"account {username} unlocked")


@accounts_app.command("remove")
def accounts_remove(username: str, database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Remove a login; every app authorization it gave is revoked (its tokens stop)."""
    with opened(database_url), security_at(database_url) as security:
        removed = security.store.remove_account(username)
    if not removed:
        fail(f"No login {username!r}; see `eigendossier accounts list`")
    typer.echo(f"account {username} removed")


@keys_app.command("rotate")
def keys_rotate(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Add a new generation of signing keys; the one before the previous is retired."""
    from consent.tokens import new_signing_keys  # noqa: PLC0415

    with opened(database_url), security_at(database_url) as security:
        security.store.add_signing_keys(new_signing_keys())
        retired = security.store.retire_signing_keys_before(keep=2)
    typer.echo(f"new signing keys added; {retired} old key(s) retired")
