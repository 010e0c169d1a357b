"""The delivery worker: what the outbox holds leaves the dossier, once the client allows it.

Every write of a resource leaves a ``change`` row in the outbox, in the write's own
transaction (:meth:`SessionBase.enqueue_change`), whenever a Subscription exists. A worker
leases due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers in several
processes each take a row once; on SQLite the write lock makes one worker at a time) and:

- turns a change into a ``notify`` row per active Subscription of that type (and a
  ``handshake`` row for a Subscription that was requested), in one transaction;
- delivers a notify row over HTTP only if, at that moment, the subscribing app may see the
  changed resource under the client's Consents and it matches the criteria: a revoked
  grant sends nothing from the very next change, and an id-only notification never names
  what the app could not read; each delivery is an entry in the client's access log;
- retries a failed delivery with exponential backoff and jitter, and after
  ``max_attempts`` moves it to ``dead`` and puts the Subscription in ``error`` with the
  reason;
- runs the Bulk Data exports a kick-off left in the outbox (:mod:`gateway.exports`), under
  the asking app's access rebuilt the same way;
- sends the parcels an adapter left for a destination outside the dossier (the Omaha
  export to a back office) over HTTP or AMQP (:mod:`gateway.destinations`), and drops a
  parcel's data once it is delivered.

Delivery is at least once: every request carries the row's ``Idempotency-Key``; a worker
killed after the receiver answered and before it recorded that, delivers the row again
when its lease runs out, with the same key, for the receiver to drop.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import ColumnElement, and_, or_, select, update

from consent.audit import Access, audit_event
from consent.context import AccessContext, Kind
from consent.registry import App
from consent.scopes import parse_scopes
from gateway.destinations import DestinationError, configured, send
from gateway.interactions.authorize import ConsentCaller, write_events
from gateway.interactions.dispatch import Dispatcher
from gateway.interactions.dossier import server_context
from gateway.interactions.model import Context, FhirRequest, Services
from gateway.interactions.privileged import system_context
from gateway.interactions.subscriptions import OWNER, PAYLOAD, criteria_of
from gateway.search.dates import to_micros
from gateway.search.execute import run_search
from gateway.search.extract import KIND_PARAMS, SET_PARAMS
from gateway.search.params import parse_search
from gateway.store.access import AccessFilter
from gateway.store.repository import Session
from gateway.store.schema import (
    outbox,
    parcels,
    resources,
    search_kind,
    search_reference,
    search_token,
)
from gateway.store.session_base import outbox_row
from mappings.core.errors import FhirError
from mappings.core.plugins import Parcel

__all__ = [
    "DeliverySettings",
    "Worker",
    "dead_rows",
    "outbox_status",
    "retry_dead",
    "tidy",
]

log = logging.getLogger("eigendossier.delivery")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    batch: int = 50
    lease: dt.timedelta = dt.timedelta(seconds=60)
    max_attempts: int = 8
    first_delay: dt.timedelta = dt.timedelta(seconds=2)
    max_delay: dt.timedelta = dt.timedelta(minutes=30)
    timeout: float = 10.0
    #: how long delivered rows are kept (``outbox status`` counts them), and how often the
    #: worker clears them and expired exports away
    keep_done: dt.timedelta = dt.timedelta(days=7)
    housekeeping_every: dt.timedelta = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class _Row:
    pk: int
    kind: str
    key: str
    subscription: str | None
    res_type: str
    res_id: str
    version_id: int
    attempts: int


class Worker:
    """Deliveries of one process; ``apps`` finds a registered app (None: open mode)."""

    def __init__(
        self,
        services: Services,
        settings: DeliverySettings | None = None,
        apps: Callable[[str], App | None] | None = None,
        http: httpx.Client | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``environ`` holds the destinations (``EIGENDOSSIER_DESTINATION_*``); by default
        the process environment, read at each delivery."""
        self.services = services
        self._environ = environ
        self.settings = settings or DeliverySettings()
        self._apps = apps
        self._http = http or httpx.Client(timeout=self.settings.timeout, follow_redirects=False)
        self._router = Dispatcher()
        self._everything: AccessFilter | None = None
        self._criteria: tuple[dict[str, str], _Matcher] | None = None
        self._tidied: int | None = None
        self._names: dict[str, str] = {}  # client_id -> the app's name, for the access log

    # -- the loop -----------------------------------------------------------------------

    def run_once(self) -> int:
        """Handle what is due now; how many rows were handled."""
        handled = 0
        changes = self._claim(("change",))
        if changes:
            self._fan_out(changes)
            handled += len(changes)
        for row in self._claim(("notify", "handshake")):
            self._deliver(row)
            handled += 1
        for row in self._claim(("export",)):
            self._export(row)
            handled += 1
        for row in self._claim(("parcel",)):
            self._send_parcel(row)
            handled += 1
        return handled

    def _send_parcel(self, row: _Row) -> None:
        with self.services.store.read() as session:
            stored = session.connection.execute(
                select(parcels).where(parcels.c.key == row.key)
            ).first()
        if stored is None:
            self.services.store.write(lambda s: self._finish(s, row, "the parcel is gone"))
            return
        try:
            destination = configured(self._environ).get(stored.destination)
        except DestinationError as fault:
            self._failed(row, None, str(fault))
            return
        if destination is None:
            self._failed(row, None, f"no destination {stored.destination!r} is configured")
            return
        parcel = Parcel(stored.key, stored.content_type, stored.data, json.loads(stored.headers))
        failure = send(destination, parcel, self._http, self.settings.timeout)
        if failure is not None:
            self._failed(row, None, failure)
            return

        def unit(session: Session) -> None:
            self._finish(session, row)
            session.connection.execute(parcels.delete().where(parcels.c.key == row.key))

        self.services.store.write(unit)
        log.info(
            "parcel %s delivered to %s (%s)", row.key, destination.name, destination.describe()
        )

    def _export(self, row: _Row) -> None:
        from gateway.exports import run_export  # noqa: PLC0415

        try:
            run_export(self.services, row.res_id, self._export_access)
        except Exception:
            log.exception("export %s failed", row.res_id)
            self.services.store.write(lambda s: self._finish(s, row, "the export failed"))
            return
        self.services.store.write(lambda s: self._finish(s, row))

    def _export_access(
        self, session: Session, owner: str | None
    ) -> tuple[AccessFilter, AccessContext | None]:
        if owner is None or self._apps is None:
            reason = "an export asked in open mode (no app)"
            return system_context(self.services, reason, self._router).access, None
        who = self._app_context(owner)
        if isinstance(who, str):
            return AccessFilter.nothing(), None
        return self._access(session, who), who

    def run(self, stop: threading.Event, idle: float = 0.5) -> None:
        """Until ``stop`` is set: handle what is due; when nothing is, wait until a commit of
        this process leaves rows in the outbox, or ``idle`` seconds (other processes'
        rows, retries coming due)."""
        written = self.services.store.outbox_written
        try:
            while not stop.is_set():
                written.clear()
                try:
                    busy = self.run_once()
                except Exception:
                    log.exception("delivery round failed; trying again")
                    busy = 0
                if not busy:  # a commit in this process wakes it; others are polled
                    self._housekeeping()
                    written.wait(idle)
        finally:
            self.close()

    def _recipient(self, who: AccessContext | None) -> str:
        """Who was told, in words: the app's name and the organisation it acts for."""
        if who is None:
            return "a subscriber of the operator's"
        name = self._names.get(who.client_id, who.client_id)
        code = (who.organization_identifier or "").rpartition("|")[2]
        return f"{name} ({code})" if code else name

    def _housekeeping(self) -> None:
        now = self._now()
        every = int(self.settings.housekeeping_every.total_seconds() * 1_000_000)
        if self._tidied is not None and now - self._tidied < every:
            return
        self._tidied = now
        try:
            tidy(self.services, now - int(self.settings.keep_done.total_seconds() * 1_000_000))
        except Exception:
            log.exception("housekeeping failed; trying again later")

    def close(self) -> None:
        """Close the HTTP connections (the worker is not used afterwards)."""
        self._http.close()

    # -- claiming -----------------------------------------------------------------------

    def _now(self) -> int:
        return to_micros(self.services.clock.now())

    def _claim(self, kinds: tuple[str, ...]) -> list[_Row]:
        now = self._now()
        lease = now + int(self.settings.lease.total_seconds() * 1_000_000)
        condition = and_(
            outbox.c.kind.in_(kinds),
            or_(
                and_(outbox.c.state == "pending", outbox.c.next_at <= now),
                and_(outbox.c.state == "delivering", outbox.c.lease_until < now),
            ),
        )
        with self.services.store.read(snapshot=False) as session:  # idle: no write lock
            if (
                session.connection.execute(select(outbox.c.pk).where(condition).limit(1)).first()
                is None
            ):
                return []

        def unit(session: Session) -> list[_Row]:
            connection = session.connection
            due = select(outbox).where(condition).order_by(outbox.c.pk).limit(self.settings.batch)
            if connection.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = [
                _Row(
                    r.pk,
                    r.kind,
                    r.key,
                    r.subscription,
                    r.res_type,
                    r.res_id,
                    r.version_id,
                    r.attempts,
                )
                for r in connection.execute(due)
            ]
            if rows:
                connection.execute(
                    update(outbox)
                    .where(outbox.c.pk.in_([r.pk for r in rows]))
                    .values(state="delivering", lease_until=lease)
                )
            return rows

        return self.services.store.write(unit)

    def _finish(self, session: Session, row: _Row, note: str | None = None) -> None:
        session.connection.execute(
            update(outbox)
            .where(outbox.c.pk == row.pk)
            .values(state="done", finished=self._now(), lease_until=None, last_error=note)
        )

    # -- fan-out ------------------------------------------------------------------------

    def _fan_out(self, changes: list[_Row]) -> None:
        def unit(session: Session) -> None:
            subscriptions = _subscriptions(session)
            active = {k: v for k, v in subscriptions.items() if v.get("status") == "active"}
            matcher = self._matcher(active)
            now = self._now()
            rows = []
            for change in changes:
                target = f"{change.res_type}/{change.res_id}/_history/{change.version_id}"
                if change.res_type == "Subscription":
                    subscription = subscriptions.get(change.res_id)
                    if subscription is not None and subscription.get("status") == "requested":
                        key = f"handshake:{target}"
                        rows.append(_new_row("handshake", key, change, now, change.res_id))
                for sub_id in matcher.matching(session, change, self._matches_in_sql):
                    key = f"notify:{sub_id}:{target}"
                    rows.append(_new_row("notify", key, change, now, sub_id))
                self._finish(session, change)
            if rows:
                statement = _insert_ignoring_duplicates(session, rows)
                session.connection.execute(statement)

        self.services.store.write(unit)

    def _matcher(self, active: dict[str, dict[str, Any]]) -> _Matcher:
        versions = {
            k: str((v.get("meta") or {}).get("versionId")) for k, v in sorted(active.items())
        }
        if self._criteria is None or self._criteria[0] != versions:
            self._criteria = (versions, _Matcher(self.services, active))
        return self._criteria[1]

    def _matches_in_sql(self, session: Session, subscription: dict[str, Any], change: _Row) -> bool:
        """Whether the changed resource meets criteria too rich for the index match (who
        may see it is decided at delivery, under the subscriber's consent)."""
        resource_type, query = criteria_of(subscription)
        if self._everything is None:
            reason = "matching changes against Subscription criteria (consent at delivery)"
            self._everything = system_context(self.services, reason, self._router).access
        search = parse_search(
            resource_type, [*query, ("_id", change.res_id)], self.services.registry, strict=True
        )
        page = run_search(session.connection, self.services.compiler, search, self._everything)
        return bool(page.matches)

    # -- delivering ---------------------------------------------------------------------

    def _deliver(self, row: _Row) -> None:
        with self.services.store.read() as session:
            current = session.current("Subscription", row.subscription or row.res_id)
            subscription = (
                orjson.loads(current.content) if current and current.content is not None else None
            )
            plan = self._plan(session, row, subscription)
        if isinstance(plan, str):  # nothing to send, and why (never sent, never retried)
            self.services.store.write(lambda s: self._finish(s, row, plan))
            return
        assert subscription is not None
        body, who, patients = plan
        error = self._post(subscription, row, body)
        if error is None:
            self._delivered(row, subscription, who, patients)
        else:
            self._failed(row, subscription, error)

    def _plan(
        self, session: Session, row: _Row, subscription: dict[str, Any] | None
    ) -> str | tuple[bytes | None, AccessContext | None, frozenset[str]]:
        if subscription is None:
            return "the subscription is gone"
        if row.kind == "handshake":
            return (
                (None, None, frozenset())
                if subscription.get("status") == "requested"
                else ("no longer requested")
            )
        if subscription.get("status") != "active":
            return "the subscription is not active"
        who = self._subscriber(subscription)
        if isinstance(who, str):
            return who
        access = self._access(session, who)
        resource_type, query = criteria_of(subscription)
        search = parse_search(
            resource_type, [*query, ("_id", row.res_id)], self.services.registry, strict=True
        )
        page = run_search(session.connection, self.services.compiler, search, access)
        if not page.matches:
            return "not visible to the subscriber now, or no longer matching"
        match = page.matches[0]
        patients = session.patients_of([match.pk]).get(match.pk, frozenset())
        return (
            _payload(
                self.services.base_url, subscription, match.res_type, match.res_id, match.content
            ),
            who,
            patients,
        )

    def _subscriber(self, subscription: dict[str, Any]) -> AccessContext | str | None:
        owner = owner_of_resource(self.services, subscription)
        if owner is None or self._apps is None:
            return None  # written by the operator or in open mode: no caller to narrow
        return self._app_context(owner)

    def _app_context(self, owner: str) -> AccessContext | str:
        """The registered app ``owner`` as a caller, or why it cannot be one any more."""
        assert self._apps is not None
        app = self._apps(owner)
        if app is not None:
            self._names[app.client_id] = app.name
        if app is None or not app.active:
            return "the subscribing app is no longer registered or active"
        scopes, _ = parse_scopes(app.scopes)
        return AccessContext(
            kind=Kind.SYSTEM,
            client_id=app.client_id,
            scopes=scopes,
            subject=app.client_id,
            token_id="",
            organization_identifier=app.organization_identifier,
            purpose=app.purpose,
        )

    def _access(self, session: Session, who: AccessContext | None) -> AccessFilter:
        if who is None:  # a Subscription the operator wrote, or one of open mode
            reason = "a delivery to a subscription without a subscribing app"
            return system_context(self.services, reason, self._router).access
        caller = ConsentCaller(self.services, who)
        context = Context(self.services, access=AccessFilter.nothing(), router=self._router)
        return caller.scoped(context, "search-type", session).access

    def _post(self, subscription: dict[str, Any], row: _Row, body: bytes | None) -> str | None:
        channel = subscription.get("channel") or {}
        headers = {"Idempotency-Key": row.key, "X-Subscription": str(subscription.get("id"))}
        if row.kind == "handshake":
            headers["X-Subscription-Handshake"] = "true"
        for line in channel.get("header", []):
            name, _, value = str(line).partition(":")
            if name.strip() and name.strip().lower() not in ("host", "content-length"):
                headers[name.strip()] = value.strip()
        if body is not None:
            headers["Content-Type"] = "application/fhir+json"
        try:
            response = self._http.post(str(channel.get("endpoint")), content=body, headers=headers)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: the endpoint did not answer"
        if 200 <= response.status_code < 300:
            return None
        return f"the endpoint answered {response.status_code}"

    def _delivered(
        self,
        row: _Row,
        subscription: dict[str, Any],
        who: AccessContext | None,
        patients: frozenset[str],
    ) -> None:
        def unit(session: Session) -> None:
            self._finish(session, row)
            if row.kind == "handshake":
                self._set_status(session, subscription, "active", None)
                return
            events = [
                audit_event(
                    who or server_context("delivery", "operator"),
                    Access(
                        interaction="$notify",
                        outcome="0",
                        recorded=self.services.clock.now(),
                        patient=patient,
                        objects=(f"{row.res_type}/{row.res_id}",),
                        description=(
                            f"notified {self._recipient(who)} of a change to "
                            f"{row.res_type}/{row.res_id}"
                        ),
                    ),
                    self.services.base_url,
                )
                for patient in sorted(patients)
            ]
            write_events(self.services, session, events)

        self.services.store.write(unit)

    def _set_status(
        self, session: Session, subscription: dict[str, Any], status: str, error: str | None
    ) -> None:
        """The Subscription as the server sees it now (active after the handshake, error
        after the last failed attempt), written through the privileged door."""
        changed = {k: v for k, v in subscription.items() if k != "meta"}
        changed["status"] = status
        if error:
            changed["error"] = error[:500]
        else:
            changed.pop("error", None)
        reason = "the delivery worker sets a Subscription's status"
        context = system_context(self.services, reason, self._router)
        path = f"Subscription/{subscription['id']}"
        self._router.dispatch(context, FhirRequest("PUT", path, body=changed), session)

    def _failed(self, row: _Row, subscription: dict[str, Any] | None, error: str) -> None:
        attempts = row.attempts + 1
        settings = self.settings
        dead = attempts >= settings.max_attempts
        delay = min(
            settings.max_delay.total_seconds(),
            settings.first_delay.total_seconds() * 2 ** (attempts - 1),
        ) * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not secrecy)

        def unit(session: Session) -> None:
            session.connection.execute(
                update(outbox)
                .where(outbox.c.pk == row.pk)
                .values(
                    state="dead" if dead else "pending",
                    attempts=attempts,
                    next_at=self._now() + int(delay * 1_000_000),
                    lease_until=None,
                    last_error=error[:500],
                    finished=self._now() if dead else None,
                )
            )
            if dead and subscription is not None:
                self._set_status(session, subscription, "error", f"{attempts} attempts: {error}")

        self.services.store.write(unit)
        log.info("delivery %s failed (attempt %d): %s", row.key, attempts, error)


_Key = tuple[str, str]  # (parameter, value): "subject", "Patient/anna"


class _Matcher:
    """The active Subscriptions' criteria, indexed: a change is matched against its own
    token and reference index rows in a few lookups, however many Subscriptions there are.

    Criteria of plain ``param=value[,value]`` filters on token and reference parameters
    (every filter must hold; one of its values) are decided here; anything richer
    (modifiers, chains, other parameter types, an id without its type) goes to SQL.
    """

    def __init__(self, services: Services, active: dict[str, dict[str, Any]]) -> None:
        self.by_key: dict[tuple[str, _Key], set[str]] = {}
        self.plain: dict[str, tuple[str, list[frozenset[_Key]]]] = {}
        self.rich: dict[str, tuple[str, dict[str, Any]]] = {}
        self.unfiltered: dict[str, set[str]] = {}
        for sub_id, subscription in active.items():
            resource_type, query = criteria_of(subscription)
            filters = _plain_filters(services, resource_type, query)
            if filters is None:
                self.rich[sub_id] = (resource_type, subscription)
            elif not filters:
                self.unfiltered.setdefault(resource_type, set()).add(sub_id)
            else:
                self.plain[sub_id] = (resource_type, filters)
                for key in filters[0]:  # the first filter finds the candidates
                    self.by_key.setdefault((resource_type, key), set()).add(sub_id)

    def matching(
        self,
        session: Session,
        change: _Row,
        in_sql: Callable[[Session, dict[str, Any], _Row], bool],
    ) -> list[str]:
        found = set(self.unfiltered.get(change.res_type, ()))
        keys: frozenset[_Key] | None = None
        candidates = set()
        if any(t == change.res_type for t, _ in self.plain.values()):
            keys = _index_keys(session, change.res_type, change.res_id)
            for key in keys:
                candidates |= self.by_key.get((change.res_type, key), set())
        for sub_id in candidates:
            _, filters = self.plain[sub_id]
            if keys is not None and all(f & keys for f in filters):
                found.add(sub_id)
        for sub_id, (resource_type, subscription) in self.rich.items():
            if resource_type == change.res_type and in_sql(session, subscription, change):
                found.add(sub_id)
        return sorted(found)


def _plain_filters(
    services: Services, resource_type: str, query: list[tuple[str, str]]
) -> list[frozenset[_Key]] | None:
    """Per filter, the index keys one of which the resource must have; None: too rich."""
    try:
        search = parse_search(resource_type, query, services.registry, strict=True)
    except FhirError:
        return None
    params = services.registry.by_type.get(resource_type, {})
    out = []
    for item in search.filters:
        param = params.get(item.name)
        if (
            param is None
            or item.name.startswith("_")  # _id and friends live outside the index tables
            or item.modifier
            or item.chain
            or param.type not in ("token", "reference")
        ):
            return None
        keys = set()
        for value in item.values:
            if param.type == "reference":
                if value.count("/") != 1:
                    return None  # a bare id: its type is the database's to resolve
                keys.add((item.name, value))
            else:
                system, bar, code = value.rpartition("|")
                keys.add((item.name, f"{system}|{code}" if bar else f"*|{code}"))
        out.append(frozenset(keys))
    if search.includes or search.revincludes or search.sort:
        return None
    return out


def _index_keys(session: Session, res_type: str, res_id: str) -> frozenset[_Key]:
    """The token and reference keys of the current version of one resource."""
    pk = (
        select(resources.c.pk)
        .where(resources.c.res_type == res_type, resources.c.res_id == res_id)
        .scalar_subquery()
    )
    keys: set[_Key] = set()
    kind = select(search_kind.c.kind).where(search_kind.c.res_pk == pk)
    own: ColumnElement[bool] = search_token.c.res_pk == pk
    if res_type in KIND_PARAMS:  # its rows, and its kind's (ADR 0041)
        own = or_(own, search_token.c.res_pk.in_(kind))
    tokens = session.connection.execute(
        select(search_token.c.param, search_token.c.system, search_token.c.code).where(own)
    )
    for param, system, code in tokens:
        keys.add((param, f"{system or ''}|{code}"))
        keys.add((param, f"*|{code}"))
    named: ColumnElement[bool] = search_reference.c.res_pk == pk
    if res_type in SET_PARAMS:  # its rows, and its set's (ADR 0043)
        named = or_(named, search_reference.c.res_pk.in_(kind))
    references = session.connection.execute(
        select(
            search_reference.c.param, search_reference.c.target_type, search_reference.c.target_id
        ).where(named)
    )
    for param, target_type, target_id in references:
        if target_type and target_id:
            keys.add((param, f"{target_type}/{target_id}"))
    return frozenset(keys)


def owner_of_resource(services: Services, subscription: dict[str, Any]) -> str | None:
    url = services.care.canon.extension(OWNER)
    return next(
        (
            str(e.get("valueString"))
            for e in subscription.get("extension", [])
            if e.get("url") == url
        ),
        None,
    )


def _subscriptions(session: Session) -> dict[str, dict[str, Any]]:
    rows = session.connection.execute(
        select(resources.c.res_id, resources.c.content).where(
            resources.c.res_type == "Subscription", resources.c.deleted.is_(False)
        )
    )
    return {res_id: orjson.loads(content) for res_id, content in rows if content is not None}


def _new_row(kind: str, key: str, change: _Row, now: int, subscription: str) -> dict[str, Any]:
    return outbox_row(
        kind, key, change.res_type, change.res_id, change.version_id, now, subscription
    )


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> Any:
    if session.connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

        return pg_insert(outbox).values(rows).on_conflict_do_nothing(index_elements=["key"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    return sqlite_insert(outbox).values(rows).on_conflict_do_nothing(index_elements=["key"])


def _payload(
    base_url: str,
    subscription: dict[str, Any],
    res_type: str,
    res_id: str,
    content: bytes,
) -> bytes | None:
    """What the notification carries: nothing, the id only, or the resource."""
    channel = subscription.get("channel") or {}
    if channel.get("payload") != "application/fhir+json":
        return None
    mode = next(
        (
            e.get("valueCode")
            for e in (channel.get("_payload") or {}).get("extension", [])
            if e.get("url") == PAYLOAD
        ),
        "full-resource",
    )
    entry: dict[str, Any] = {
        "fullUrl": f"{base_url}/{res_type}/{res_id}",
        "request": {"method": "PUT", "url": f"{res_type}/{res_id}"},
    }
    if mode == "full-resource":
        entry["resource"] = orjson.Fragment(content)
    elif mode != "id-only":
        return None
    return orjson.dumps({"resourceType": "Bundle", "type": "history", "entry": [entry]})


def outbox_status(services: Services) -> dict[tuple[str, str], int]:
    """How many rows per (kind, state)."""
    from sqlalchemy import func  # noqa: PLC0415

    with services.store.read() as session:
        rows = session.connection.execute(
            select(outbox.c.kind, outbox.c.state, func.count()).group_by(
                outbox.c.kind, outbox.c.state
            )
        )
        return {(kind, state): int(count) for kind, state, count in rows}


def tidy(services: Services, done_before: int) -> tuple[int, int]:
    """Delivered rows finished before ``done_before`` and expired exports, deleted:
    (rows, exports)."""
    from gateway.store.exports import delete_expired  # noqa: PLC0415

    now = to_micros(services.clock.now())

    def unit(session: Session) -> tuple[int, int]:
        gone = session.connection.execute(
            outbox.delete().where(outbox.c.state == "done", outbox.c.finished < done_before)
        )
        return int(gone.rowcount), delete_expired(session, now)

    return services.store.write(unit)


def dead_rows(services: Services) -> list[tuple[str, int, str | None]]:
    with services.store.read() as session:
        rows = session.connection.execute(
            select(outbox.c.key, outbox.c.attempts, outbox.c.last_error)
            .where(outbox.c.state == "dead")
            .order_by(outbox.c.pk)
        )
        return [(key, int(attempts), error) for key, attempts, error in rows]


def retry_dead(services: Services, key: str | None = None) -> int:
    """Dead rows (or the one with ``key``) pending again, due now; the Subscriptions they
    put in ``error`` are active again (the operator vouches that the endpoint is back)."""
    now = to_micros(services.clock.now())

    def unit(session: Session) -> int:
        where = [outbox.c.state == "dead"]
        if key is not None:
            where.append(outbox.c.key == key)
        owners = {
            row[0]
            for row in session.connection.execute(select(outbox.c.subscription).where(*where))
            if row[0]
        }
        done = session.connection.execute(
            update(outbox)
            .where(*where)
            .values(state="pending", attempts=0, next_at=now, finished=None, lease_until=None)
        )
        router = Dispatcher()
        context = system_context(services, "the operator retries dead deliveries", router)
        for sub_id in sorted(owners):
            current = session.current("Subscription", sub_id)
            if current is None or current.content is None:
                continue
            subscription = orjson.loads(current.content)
            if subscription.get("status") != "error":
                continue
            changed = {k: v for k, v in subscription.items() if k not in ("meta", "error")}
            changed["status"] = "active"
            path = f"Subscription/{sub_id}"
            router.dispatch(context, FhirRequest("PUT", path, body=changed), session)
        return int(done.rowcount)

    return services.store.write(unit)
