"""The authorization server's records in the dossier database (``consent.registry.AuthStore``).

Each method is one short transaction on the store's engine, so every gateway process sees
the same apps, grants, revocations and signing keys at once. Whatever can make a token
that verified before stop verifying (a revocation, an app changed or removed, an account
removed, a signing key retired) raises the store's access epoch in the same transaction:
a process keeps a token's verdict only while the epoch stands still (ADR 0016).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from consent.registry import Account, App, Authorization, Code
from gateway.search.dates import to_micros
from gateway.store.engine import write_transaction
from gateway.store.schema import (
    access_epoch,
    accounts,
    oauth_apps,
    oauth_assertions,
    oauth_authorizations,
    oauth_codes,
    oauth_refresh_tokens,
    oauth_revoked,
    signing_keys,
)

__all__ = ["SqlAuthStore"]

_RAISE_EPOCH = update(access_epoch).where(access_epoch.c.id == 1).values(n=access_epoch.c.n + 1)


def _moment(micros: int | None) -> dt.datetime | None:
    if micros is None:
        return None
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def _app(row: Any) -> App:
    return App(
        client_id=row.client_id,
        name=row.name,
        kind=row.kind,
        scopes=row.scopes,
        redirect_uris=tuple(orjson.loads(row.redirect_uris)),
        jwks=orjson.loads(row.jwks) if row.jwks else None,
        jwks_uri=row.jwks_uri,
        secret_hash=row.secret_hash,
        organization_identifier=row.organization_identifier,
        purpose=row.purpose,
        active=row.active,
        created=_moment(row.created),
    )


def _account(row: Any) -> Account:
    return Account(
        username=row.username,
        password_hash=row.password_hash,
        kind=row.kind,
        user=row.fhir_user,
        organization=row.organization,
        failures=row.failures,
        locked_until=_moment(row.locked_until),
        external_subject=row.external_subject,
    )


def _authorization(row: Any) -> Authorization:
    created = _moment(row.created)
    assert created is not None
    return Authorization(
        row.id, row.client_id, row.username, row.scope, row.patient, created, row.revoked
    )


def _upsert(
    connection: Any,
    table: Any,
    key: str,
    value: str,
    values: dict[str, Any],
    on_insert: dict[str, Any] | None = None,
) -> None:
    """Update the row keyed ``key = value``, or insert it (with ``on_insert`` too)."""
    done = connection.execute(update(table).where(table.c[key] == value).values(values))
    if done.rowcount == 0:
        connection.execute(insert(table).values({key: value, **values, **(on_insert or {})}))


class SqlAuthStore:
    """``AuthStore`` over SQLAlchemy Core; SQLite and PostgreSQL alike."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- apps ------------------------------------------------------------------------------

    def app(self, client_id: str) -> App | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(oauth_apps).where(oauth_apps.c.client_id == client_id)
            ).first()
        return None if row is None else _app(row)

    def apps(self) -> list[App]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(oauth_apps).order_by(oauth_apps.c.created)).all()
        return [_app(r) for r in rows]

    def save_app(self, app: App) -> None:
        created = app.created or dt.datetime.now(dt.UTC)
        values = {
            "name": app.name,
            "kind": app.kind,
            "scopes": app.scopes,
            "redirect_uris": orjson.dumps(list(app.redirect_uris)).decode(),
            "jwks": orjson.dumps(app.jwks).decode() if app.jwks is not None else None,
            "jwks_uri": app.jwks_uri,
            "secret_hash": app.secret_hash,
            "organization_identifier": app.organization_identifier,
            "purpose": app.purpose,
            "active": app.active,
        }
        with write_transaction(self.engine) as connection:
            _upsert(
                connection,
                oauth_apps,
                "client_id",
                app.client_id,
                values,
                {"created": to_micros(created)},
            )
            connection.execute(_RAISE_EPOCH)

    # -- accounts ----------------------------------------------------------------------------

    def remove_app(self, client_id: str) -> bool:
        """Remove an app and revoke every authorization given to it; False if unknown."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(oauth_authorizations)
                .where(oauth_authorizations.c.client_id == client_id)
                .values(revoked=True)
            )
            removed = connection.execute(
                delete(oauth_apps).where(oauth_apps.c.client_id == client_id)
            ).rowcount
            connection.execute(_RAISE_EPOCH)
        return bool(removed)

    def accounts(self) -> list[Account]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(accounts).order_by(accounts.c.username)).all()
        return [_account(r) for r in rows]

    def remove_account(self, username: str) -> bool:
        """Remove a login and revoke every authorization it gave; False if unknown."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(oauth_authorizations)
                .where(oauth_authorizations.c.username == username)
                .values(revoked=True)
            )
            removed = connection.execute(
                delete(accounts).where(accounts.c.username == username)
            ).rowcount
            connection.execute(_RAISE_EPOCH)
        return bool(removed)

    def revoke_authorizations_of_app(self, client_id: str) -> int:
        with write_transaction(self.engine) as connection:
            connection.execute(_RAISE_EPOCH)
            return int(
                connection.execute(
                    update(oauth_authorizations)
                    .where(
                        oauth_authorizations.c.client_id == client_id,
                        oauth_authorizations.c.revoked.is_(False),
                    )
                    .values(revoked=True)
                ).rowcount
            )

    def account(self, username: str) -> Account | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(accounts).where(accounts.c.username == username)
            ).first()
        return None if row is None else _account(row)

    def account_by_subject(self, external_subject: str) -> Account | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(accounts).where(accounts.c.external_subject == external_subject)
            ).first()
        return None if row is None else _account(row)

    def save_account(self, account: Account) -> None:
        values = {
            "password_hash": account.password_hash,
            "kind": account.kind,
            "fhir_user": account.user,
            "organization": account.organization,
            "failures": account.failures,
            "locked_until": to_micros(account.locked_until) if account.locked_until else None,
            "external_subject": account.external_subject,
        }
        with write_transaction(self.engine) as connection:
            _upsert(connection, accounts, "username", account.username, values)

    def login_failed(self, username: str, locked_until: dt.datetime | None) -> int:
        with write_transaction(self.engine) as connection:
            values: dict[str, Any] = {"failures": accounts.c.failures + 1}
            if locked_until is not None:
                values = {"failures": 0, "locked_until": to_micros(locked_until)}
            connection.execute(
                update(accounts).where(accounts.c.username == username).values(values)
            )
            failures = connection.execute(
                select(accounts.c.failures).where(accounts.c.username == username)
            ).scalar()
        return int(failures or 0)

    def login_succeeded(self, username: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(accounts)
                .where(accounts.c.username == username)
                .values(failures=0, locked_until=None)
            )

    # -- codes -------------------------------------------------------------------------------

    def save_code(self, code: Code) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(oauth_codes).values(
                    digest=code.digest,
                    client_id=code.client_id,
                    username=code.username,
                    redirect_uri=code.redirect_uri,
                    scope=code.scope,
                    patient=code.patient,
                    challenge=code.challenge,
                    nonce=code.nonce,
                    expires=to_micros(code.expires),
                    used=False,
                )
            )

    def take_code(self, digest: str) -> tuple[Code | None, str | None]:
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(oauth_codes).where(oauth_codes.c.digest == digest)
            ).first()
            if row is None:
                return None, None
            if row.used:
                return None, row.authorization_id
            done = connection.execute(
                update(oauth_codes)
                .where(oauth_codes.c.digest == digest, oauth_codes.c.used.is_(False))
                .values(used=True)
            )
            if done.rowcount != 1:
                return None, None
        expires = _moment(row.expires)
        assert expires is not None
        return (
            Code(
                row.digest,
                row.client_id,
                row.username,
                row.redirect_uri,
                row.scope,
                row.patient,
                row.challenge,
                row.nonce,
                expires,
            ),
            None,
        )

    def link_code(self, digest: str, authorization_id: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(oauth_codes)
                .where(oauth_codes.c.digest == digest)
                .values(authorization_id=authorization_id)
            )

    # -- authorizations and refresh tokens ------------------------------------------------------

    def save_authorization(self, authorization: Authorization) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(oauth_authorizations).values(
                    id=authorization.id,
                    client_id=authorization.client_id,
                    username=authorization.username,
                    scope=authorization.scope,
                    patient=authorization.patient,
                    created=to_micros(authorization.created),
                    revoked=authorization.revoked,
                )
            )

    def authorization(self, authorization_id: str) -> Authorization | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(oauth_authorizations).where(oauth_authorizations.c.id == authorization_id)
            ).first()
        return None if row is None else _authorization(row)

    def authorizations_of(self, username: str) -> list[Authorization]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(oauth_authorizations)
                .where(oauth_authorizations.c.username == username)
                .order_by(oauth_authorizations.c.created)
            ).all()
        return [_authorization(r) for r in rows]

    def revoke_authorization(self, authorization_id: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(oauth_authorizations)
                .where(oauth_authorizations.c.id == authorization_id)
                .values(revoked=True)
            )
            connection.execute(_RAISE_EPOCH)

    def save_refresh(self, digest: str, authorization_id: str, expires: dt.datetime) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(oauth_refresh_tokens).values(
                    digest=digest,
                    authorization_id=authorization_id,
                    expires=to_micros(expires),
                    used=False,
                )
            )

    def use_refresh(self, digest: str) -> tuple[str | None, bool]:
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(oauth_refresh_tokens).where(oauth_refresh_tokens.c.digest == digest)
            ).first()
            if row is None:
                return None, False
            if row.expires < to_micros(dt.datetime.now(dt.UTC)):
                return None, False
            done = connection.execute(
                update(oauth_refresh_tokens)
                .where(
                    oauth_refresh_tokens.c.digest == digest, oauth_refresh_tokens.c.used.is_(False)
                )
                .values(used=True)
            )
        return row.authorization_id, done.rowcount != 1

    # -- assertions and revoked access tokens ----------------------------------------------

    def remember_assertion(self, client_id: str, jti: str, expires: dt.datetime) -> bool:
        now = to_micros(dt.datetime.now(dt.UTC))
        try:
            with write_transaction(self.engine) as connection:
                connection.execute(delete(oauth_assertions).where(oauth_assertions.c.expires < now))
                connection.execute(
                    insert(oauth_assertions).values(
                        client_id=client_id, jti=jti, expires=to_micros(expires)
                    )
                )
        except IntegrityError:
            return False
        return True

    def revoke_token(self, jti: str, expires: dt.datetime) -> None:
        try:
            with write_transaction(self.engine) as connection:
                connection.execute(
                    insert(oauth_revoked).values(jti=jti, expires=to_micros(expires))
                )
                connection.execute(_RAISE_EPOCH)
        except IntegrityError:
            return  # revoked already

    def token_revoked(self, jti: str, authorization_id: str | None) -> bool:
        with self.engine.connect() as connection:
            if connection.execute(
                select(oauth_revoked.c.jti).where(oauth_revoked.c.jti == jti)
            ).first():
                return True
            if authorization_id is None:
                return False
            revoked = connection.execute(
                select(oauth_authorizations.c.revoked).where(
                    oauth_authorizations.c.id == authorization_id
                )
            ).scalar()
        return revoked is None or bool(revoked)

    # -- signing keys --------------------------------------------------------------------------

    def signing_keys(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(signing_keys.c.jwk)
                .where(signing_keys.c.retired.is_(False))
                .order_by(signing_keys.c.created.desc(), signing_keys.c.kid)
            ).all()
        return [orjson.loads(r.jwk) for r in rows]

    def add_signing_keys(self, keys: list[dict[str, Any]]) -> None:
        now = to_micros(dt.datetime.now(dt.UTC))
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(signing_keys),
                [
                    {
                        "kid": k["kid"],
                        "jwk": orjson.dumps(k).decode(),
                        "created": now,
                        "retired": False,
                    }
                    for k in keys
                ],
            )

    def retire_signing_keys_before(self, keep: int) -> int:
        """Retire all but the newest ``keep`` generations; returns how many were retired."""
        with write_transaction(self.engine) as connection:
            rows = connection.execute(
                select(signing_keys.c.kid, signing_keys.c.created)
                .where(signing_keys.c.retired.is_(False))
                .order_by(signing_keys.c.created.desc())
            ).all()
            generations = sorted({r.created for r in rows}, reverse=True)
            old = [r.kid for r in rows if r.created not in generations[:keep]]
            if old:
                connection.execute(
                    update(signing_keys).where(signing_keys.c.kid.in_(old)).values(retired=True)
                )
                connection.execute(_RAISE_EPOCH)
        return len(old)
