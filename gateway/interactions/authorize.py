"""The authorized caller of one request: consent decides, the data path enforces, all logged.

:class:`ConsentCaller` is built at the edge from a verified token (a
:class:`consent.context.AccessContext`). For each interaction it narrows the context:

- the token's scopes give the upper bound (types, granular conditions) for the SMART
  letter the interaction needs (r, s, c, u, d);
- the client (a patient token) reaches their own compartment; anyone else reaches only
  what an active Consent of the client permits them. Every request reads the store's
  access epoch; what a process derived from the Consents (:class:`GrantCache`) serves only
  while that epoch stands still, so a revocation holds from the very next request;
- AuditEvents are the client's and the auditors': nobody else sees them, nobody writes
  them through the API.

Every access is recorded as AuditEvents (``consent.audit``): a write's in its own
transaction, a read's straight after it, a refusal on its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from consent.audit import Access, audit_event
from consent.context import AccessContext
from consent.decision import AUDIT_TYPE, reach, write_refusal
from consent.policy import (
    Grant,
)
from consent.scopes import PERMISSION_OF_INTERACTION, ScopeRule
from gateway.interactions.auditlog import GroupCommit
from gateway.interactions.grants import GrantCache, actors_of, grants_until
from gateway.interactions.model import Context, FhirRequest, Services
from gateway.search.params import parse_search
from gateway.store.access import AccessFilter, Condition
from gateway.store.repository import Session
from mappings.core.errors import Forbidden, MethodNotAllowed

__all__ = [
    "AUDIT_TYPE",
    "ConsentCaller",
    "commit_events",
    "commit_events_now",
    "names_access_log",
    "write_events",
]

#: a kept filter (ADR 0031): the grants asked for it, by action, and the filter
_Kept = tuple[tuple[tuple[str, tuple[Grant, ...]], ...], AccessFilter]
_MAX_OBJECTS = 50  # per AuditEvent; a larger disclosure is split over more events


@dataclass(slots=True)
class ConsentCaller:
    """One request's caller; see the module docstring."""

    services: Services
    who: AccessContext
    pending: list[dict[str, Any]] = field(default_factory=list)
    log: GroupCommit | None = None  # the process's group commit of access-log entries
    #: the process's actors and grants per access epoch (without one: this request's own)
    cache: GrantCache = field(default_factory=GrantCache)
    #: the access epoch, when the edge read it already for this request (with the token)
    known_epoch: int | None = None
    #: ``known_epoch`` is the last the process saw, not read for this request: the
    #: session's first read by id confirms it, or the dispatch does (ADR 0035)
    epoch_guessed: bool = False
    _epoch: int | None = None
    _actors: frozenset[str] | None = None
    _grants: dict[str, tuple[Grant, ...]] = field(default_factory=dict)
    #: the same grants by the patient who gave them, for the access log's entries
    _held: dict[str, Mapping[str, tuple[Grant, ...]]] = field(default_factory=dict)

    # -- narrowing ---------------------------------------------------------------------

    def scoped(self, context: Context, interaction: str, session: Session) -> Context:
        letter = PERMISSION_OF_INTERACTION.get(interaction, "r")
        if self.epoch_guessed and self.known_epoch is not None:
            session.expect_epoch(self.known_epoch)
        read = self._filter(session, "s" if letter == "s" else "r")
        write = self._filter(session, letter) if letter in "cud" else None
        return context.narrowed(read, write, self, context.budget)

    def _filter(self, session: Session, letter: str) -> AccessFilter:
        """The decision (:func:`consent.decision.reach`), compiled for the store.

        The decision depends on the caller's kind, scopes and patient, the letter, and the
        grants it asks for: the filter made from it is kept (``cache``, under this
        request's access epoch) with the grants it was made from, and serves a later
        request of the same caller while :meth:`grants` gives it those grants again (ADR
        0031). One filter object for many requests is also one key of the compiled
        statements' caches, found by identity, hashed once."""
        who = self.who
        key = ("filter", letter, who.kind, who.scopes, who.patient)
        epoch = self._access_epoch(session)
        kept = self.cache.peek(epoch, key, self.services.clock.now())
        if kept is not None:
            asked, access = cast(_Kept, kept)
            if all(_same(self.grants(session, action), grants) for action, grants in asked):
                return access
        used: list[tuple[str, tuple[Grant, ...]]] = []

        def grants(action: str) -> tuple[Grant, ...]:
            found = self.grants(session, action)
            used.append((action, found))
            return found

        definitions = self.services.definitions
        served = frozenset(definitions.served)
        compartment = frozenset(t for t, params in definitions.compartment.items() if params)
        scope = reach(who, letter, served, compartment, grants)
        conditions = tuple(
            (t, tuple(self._condition(rule) for rule in rules)) for t, rules in scope.conditional
        )
        access = AccessFilter.of(scope, conditions)
        self.cache.keep(epoch, key, (tuple(used), access), None)
        return access

    def _condition(self, rule: ScopeRule) -> Condition:
        services = self.services
        search = parse_search(
            rule.resource_type, list(rule.conditions), services.registry, strict=True
        )
        return services.compiler.condition(rule.resource_type, search.filters)

    def actors(self, session: Session) -> frozenset[str]:
        if self._actors is None:
            who = self.who
            self._actors = self.cache.get(
                self._access_epoch(session),
                ("actors", who.kind, who.user, who.organization, who.organization_identifier),
                self.services.clock.now(),
                lambda: (actors_of(session, who), None),
            )
        return self._actors

    def grants(self, session: Session, action: str) -> tuple[Grant, ...]:
        if action not in self._grants:
            actors, purpose = self.actors(session), self.who.purpose
            now = self.services.clock.now()
            self._grants[action], self._held[action] = self.cache.get(
                self._access_epoch(session),
                ("grants", actors, action, purpose),
                now,
                lambda: _by_patient(*grants_until(session, actors, action, purpose, now)),
            )
        return self._grants[action]

    def _access_epoch(self, session: Session) -> int | None:
        """Read once per request, before anything derived from the Consents is used."""
        if self._epoch is None:
            self._epoch = (
                self.known_epoch if self.known_epoch is not None else session.access_epoch()
            )
        return self._epoch

    def check_resource(self, context: Context, resource: dict[str, Any]) -> None:
        """Rules on what is written, beyond where (:func:`consent.decision.write_refusal`)."""
        if resource.get("resourceType") == AUDIT_TYPE:
            raise MethodNotAllowed("AuditEvents are written by the server only")
        reason = write_refusal(self.who, resource)
        if reason is not None:
            raise Forbidden(reason)

    # -- the access log --------------------------------------------------------------------

    def recorded(
        self,
        context: Context,
        interaction: str,
        request: FhirRequest,
        session: Session,
        target: tuple[str, str] | None,
    ) -> None:
        query = _query_text(request) if interaction.startswith(("search", "history")) else None
        by_patient: dict[str | None, list[str]] = defaultdict(list)
        if session.written:
            for res_type, res_id, patients in session.written:
                for patient in patients or {None}:
                    by_patient[patient].append(f"{res_type}/{res_id}")
            written = True
            session.written = []
        else:
            written = False
            known = context.located
            unknown = sorted({ref for ref in context.trail if ref not in known})
            located = {**known, **(session.locate(unknown) if unknown else {})}
            owned = context.owners
            rest = sorted(pk for pk in located.values() if pk not in owned)
            owners = {**owned, **(session.patients_of(rest) if rest else {})}
            for ref, pk in located.items():
                for patient in owners.get(pk, frozenset()):
                    by_patient[patient].append("/".join(ref))
            for patient in _patients_named(request):
                by_patient.setdefault(patient, [])
        by_patient.pop(None, None)
        events = []
        grants_of = self._held.get("write" if written else "read", {})
        for patient, objects in sorted(by_patient.items(), key=lambda kv: str(kv[0])):
            held = grants_of.get(patient, ()) if patient is not None else ()
            consents = [g.consent for g in held]
            emergency = next((g.emergency for g in held if g.emergency), None)
            who = replace(self.who, break_glass=emergency) if emergency else self.who
            for start in range(0, max(len(objects), 1), _MAX_OBJECTS):
                access = Access(
                    interaction=interaction,
                    outcome="0",
                    recorded=self.services.clock.now(),
                    patient=patient,
                    objects=objects[start : start + _MAX_OBJECTS],
                    query=query,
                    consents=consents,
                )
                events.append(audit_event(who, access, self.services.base_url))
        if written:
            self.write_events(session, events)
        else:
            self.pending.extend(events)

    def refused(
        self,
        context: Context,
        interaction: str,
        request: FhirRequest,
        session: Session | None,
        target: tuple[str, str] | None,
        status: int,
        reason: str,
    ) -> None:
        patients: set[str] = set(_patients_named(request))
        if target is not None and session is not None:
            located = session.locate([target])
            if located:
                patients |= set(
                    session.patients_of(list(located.values())).get(located[target], frozenset())
                )
            elif status == 404 and not patients:
                return  # nothing there to protect: an ordinary not-found
        objects = ["/".join(target)] if target else []
        owners: list[str | None] = [*sorted(patients)] or [None]
        for patient in owners:
            access = Access(
                interaction=interaction,
                outcome="4",
                recorded=self.services.clock.now(),
                patient=patient,
                objects=objects,
                description=_refusal(status),
            )
            self.pending.append(audit_event(self.who, access, self.services.base_url))

    def write_events(self, session: Session, events: list[dict[str, Any]]) -> None:
        write_events(self.services, session, events)

    def discard(self) -> None:
        """Forget the entries of an attempt that answered nothing (a read on the event loop
        stopped at its budget, ADR 0022): it runs again, and that run records the access."""
        self.pending = []

    def flush(self) -> None:
        """Write the access-log entries of reads and refusals (after the read finished),
        through the process's group commit when there is one."""
        events, self.pending = self.pending, []
        if not events:
            return
        copies = [dict(e) for e in events]
        if self.log is not None:
            self.log.submit(copies)
        else:
            commit_events(self.services, copies)

    async def flush_async(self) -> None:
        """:meth:`flush` for a request served on the event loop, which it never blocks."""
        events, self.pending = self.pending, []
        if not events:
            return
        copies = [dict(e) for e in events]
        if self.log is not None:
            await self.log.submit_async(copies)
        else:
            await asyncio.to_thread(commit_events, self.services, copies)


def _same(grants: tuple[Grant, ...], kept: tuple[Grant, ...]) -> bool:
    """Whether ``grants`` are those a filter was made from: most often the very tuple the
    cache holds (a tuple compared with itself is walked item by item: 9 µs at 2,000
    grants, on every request of a GP practice), else one equal to it (ADR 0051)."""
    return grants is kept or grants == kept


def _by_patient(
    grants: tuple[Grant, ...], until: dt.datetime | None
) -> tuple[tuple[tuple[Grant, ...], Mapping[str, tuple[Grant, ...]]], dt.datetime | None]:
    """``grants`` (:func:`grants_until`'s, valid ``until``) and the same by the patient who
    gave them, kept together: an access-log entry names its patient's Consents, and a GP
    practice holds the grants of thousands of clients (ADR 0051)."""
    held: dict[str, list[Grant]] = {}
    for grant in grants:
        held.setdefault(grant.patient, []).append(grant)
    return (grants, {patient: tuple(found) for patient, found in held.items()}), until


def write_events(services: Services, session: Session, events: list[dict[str, Any]]) -> None:
    """Add access-log entries in ``session``, committed with it; the gateway indexes them as
    AuditEvent resources later, and before any read that can show them (ADR 0021)."""
    _assign_ids(services, events)
    session.log_access(events)


def names_access_log(resource_type: str | None, query: Sequence[tuple[str, str]]) -> bool:
    """Whether a search of ``resource_type`` with ``query`` can find AuditEvents: one of the
    type, or one naming it (``_revinclude=AuditEvent:...``, ``_has:AuditEvent:...``,
    ``_type=...``). Such a read indexes the waiting access-log entries first (ADR 0021)."""
    if resource_type == AUDIT_TYPE:
        return True
    return any(AUDIT_TYPE in name or AUDIT_TYPE in value for name, value in query)


def commit_events(services: Services, events: list[dict[str, Any]]) -> None:
    """Access-log entries in a transaction of their own."""
    _assign_ids(services, events)
    services.store.log_access(events)


def commit_events_now(services: Services, events: list[dict[str, Any]]) -> bool:
    """Access-log entries committed at once on the event loop, or False: another writer
    holds the lock and nothing was written (``Store.log_access_now``, ADR 0026)."""
    _assign_ids(services, events)
    return services.store.log_access_now(events)


async def commit_events_async(services: Services, events: list[dict[str, Any]]) -> None:
    """Access-log entries committed on the event loop (PostgreSQL, ADR 0039)."""
    _assign_ids(services, events)
    await services.store.log_access_async(events)


def _assign_ids(services: Services, events: list[dict[str, Any]]) -> None:
    """Each entry's AuditEvent id, given before it is committed (as a write's are), in
    the order of time (ADR 0036)."""
    for event in events:
        event["id"] = services.ids.ordered()


def _refusal(status: int) -> str:
    return {
        401: "refused: no valid token",
        403: "refused: not permitted",
        404: "refused: not permitted or not found",
    }.get(status, f"refused ({status})")


def _query_text(request: FhirRequest) -> str:
    from urllib.parse import urlencode  # noqa: PLC0415

    return f"{request.path}?{urlencode(request.query)}" if request.query else request.path


def _patients_named(request: FhirRequest) -> list[str]:
    """Patients a search names (patient=, subject=Patient/..): their log shows the search."""
    found = []
    for name, value in request.query:
        base = name.split(":")[0]
        for item in value.split(","):
            if base == "patient" and "/" not in item and item:
                found.append(item)
            elif base in ("patient", "subject") and item.startswith("Patient/"):
                found.append(item.split("/", 1)[1])
    if request.path.startswith("Patient/"):
        parts = request.path.split("/")
        if len(parts) >= 2 and parts[1] and not parts[1].startswith("$"):
            found.append(parts[1])
    return found
