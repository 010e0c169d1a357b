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

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import orjson

from consent.audit import Access, audit_event
from consent.context import AccessContext, Kind
from consent.decision import AUDIT_TYPE, reach, write_refusal
from consent.policy import (
    CONSENT_SCOPE,
    Grant,
    Request,
    Target,
    action_of,
    decide,
    grant_from,
    next_change,
)
from consent.scopes import PERMISSION_OF_INTERACTION, ScopeRule, parse_scopes
from gateway.interactions.auditlog import GroupCommit
from gateway.interactions.model import Context, FhirRequest, FhirResponse, Services
from gateway.search.params import parse_search
from gateway.store.access import AccessFilter, Condition
from gateway.store.repository import Session
from mappings.core.clock import format_instant
from mappings.core.errors import Forbidden, Invalid, MethodNotAllowed, NotFound

__all__ = [
    "AUDIT_TYPE",
    "ConsentCaller",
    "GrantCache",
    "actors_of",
    "break_the_glass",
    "explain",
    "load_grants",
]

_MAX_OBJECTS = 50  # per AuditEvent; a larger disclosure is split over more events
T = TypeVar("T")


def actors_of(session: Session, who: AccessContext) -> frozenset[str]:
    """The references a Consent may name to permit ``who``: the user, their roles, their
    care teams and organisation (or the backend app's organisation)."""
    actors: set[str] = set()
    if who.kind == Kind.PRACTITIONER and who.user:
        actors.add(who.user)
        if who.user.startswith("Practitioner/"):
            actors.update(
                f"PractitionerRole/{r.res_id}"
                for r in session.referring("PractitionerRole", "practitioner", [who.user])
            )
    if who.organization:
        actors.add(who.organization)
    if who.kind == Kind.SYSTEM and who.organization_identifier:
        system, _, value = who.organization_identifier.partition("|")
        actors.update(
            f"Organization/{i}" for i in session.with_identifier("Organization", system, value)
        )
    if actors:
        actors.update(
            f"CareTeam/{t.res_id}"
            for t in session.referring("CareTeam", "participant", sorted(actors))
        )
    return frozenset(actors)


def load_grants(
    session: Session, actors: frozenset[str], action: str, purpose: str | None, services: Services
) -> tuple[Grant, ...]:
    """The rules of every active Consent naming one of ``actors``, for ``action``."""
    return _grants_until(session, actors, action, purpose, services.clock.now())[0]


def _grants_until(
    session: Session, actors: frozenset[str], action: str, purpose: str | None, now: dt.datetime
) -> tuple[tuple[Grant, ...], dt.datetime | None]:
    """:func:`load_grants`, and the first instant after ``now`` when they may differ."""
    if not actors:
        return (), None
    request = Request(actors, action, purpose, now)
    grants = []
    changes = []
    for row in session.referring("Consent", "grantee", sorted(actors)):
        if row.content is None:
            continue
        resource = orjson.loads(row.content)
        grant = grant_from(resource, request)
        if grant is not None:
            grants.append(grant)
        if (change := next_change(resource, now)) is not None:
            changes.append(change)
    return tuple(grants), min(changes, default=None)


class GrantCache:
    """A process's memory of callers' actors and grants, per access epoch.

    Deriving them reads the Consents naming the caller and the CareTeams, PractitionerRoles
    and Organizations between (a GP practice granted by a thousand clients: a thousand
    Consents) on every request. Every request still reads the store's access epoch, which
    each write of those types raises in its own transaction; an entry serves only requests
    that read the epoch it was derived under, and a grant entry only until the next instant
    one of its Consents' periods starts or ends. So a revocation, a new care-team member or
    an expiring grant is seen on the very next request, as without the cache.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._entries: dict[Hashable, tuple[object, dt.datetime | None]] = {}

    def get(
        self,
        epoch: int | None,
        key: Hashable,
        now: dt.datetime,
        derive: Callable[[], tuple[T, dt.datetime | None]],
    ) -> T:
        """The entry for ``key`` under ``epoch``, derived (value, valid-until) when missing.

        A key names what its value is (``("grants", ...)`` holds grants): one key, one type.
        """
        if epoch is None:  # a store without the counter: derive every time
            return derive()[0]
        with self._lock:
            found = self._entries.get(key) if epoch == self._epoch else None
        if found is not None and (found[1] is None or now < found[1]):
            return cast(T, found[0])
        value, until = derive()
        with self._lock:
            if epoch != self._epoch:  # any other value, even a lower one (a restored backup)
                self._epoch = epoch
                self._entries = {}
            if len(self._entries) >= self._max:
                self._entries = {}
            self._entries[key] = (value, until)
        return value


@dataclass(slots=True)
class ConsentCaller:
    """One request's caller; see the module docstring."""

    services: Services
    who: AccessContext
    pending: list[dict[str, Any]] = field(default_factory=list)
    log: GroupCommit | None = None  # the process's group commit of access-log entries
    #: the process's actors and grants per access epoch (without one: this request's own)
    cache: GrantCache = field(default_factory=GrantCache)
    _epoch: int | None = None
    _actors: frozenset[str] | None = None
    _grants: dict[str, tuple[Grant, ...]] = field(default_factory=dict)

    # -- narrowing ---------------------------------------------------------------------

    def scoped(self, context: Context, interaction: str, session: Session) -> Context:
        letter = PERMISSION_OF_INTERACTION.get(interaction, "r")
        read = self._filter(session, "s" if letter == "s" else "r")
        write = self._filter(session, letter) if letter in "cud" else None
        return replace(context, access=read, write=write, caller=self, trail=[])

    def _filter(self, session: Session, letter: str) -> AccessFilter:
        """The decision (:func:`consent.decision.reach`), compiled for the store."""
        definitions = self.services.definitions
        served = frozenset(definitions.served)
        compartment = frozenset(t for t, params in definitions.compartment.items() if params)
        scope = reach(
            self.who, letter, served, compartment, lambda action: self.grants(session, action)
        )
        conditions = tuple(
            (t, tuple(self._condition(rule) for rule in rules)) for t, rules in scope.conditional
        )
        return AccessFilter.of(scope, conditions)

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
            self._grants[action] = self.cache.get(
                self._access_epoch(session),
                ("grants", actors, action, purpose),
                now,
                lambda: _grants_until(session, actors, action, purpose, now),
            )
        return self._grants[action]

    def _access_epoch(self, session: Session) -> int | None:
        """Read once per request, before anything derived from the Consents is used."""
        if self._epoch is None:
            self._epoch = session.access_epoch()
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
            located = session.locate(sorted(set(context.trail)))
            owners = session.patients_of(sorted(located.values()))
            for ref, pk in located.items():
                for patient in owners.get(pk, frozenset()):
                    by_patient[patient].append("/".join(ref))
            for patient in _patients_named(request):
                by_patient.setdefault(patient, [])
        by_patient.pop(None, None)
        events = []
        for patient, objects in sorted(by_patient.items(), key=lambda kv: str(kv[0])):
            held = [
                g
                for g in self._grants.get("write" if written else "read", ())
                if g.patient == patient
            ]
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


def write_events(services: Services, session: Session, events: list[dict[str, Any]]) -> None:
    """Add access-log entries in ``session`` (unguarded: the log is nobody's to refuse)."""
    with session.unguarded("the access log of this request"):
        for event in events:
            event["id"] = services.ids.new()
            session.put(event, method="POST", must_create=True)
        session.written = []


def commit_events(services: Services, events: list[dict[str, Any]]) -> None:
    """Access-log entries in a transaction of their own."""
    services.store.write(lambda s: write_events(services, s, events))


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


# -- operations of the consent model ----------------------------------------------------

BREAK_GLASS_HOURS = 4
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def _parameter(request: FhirRequest, name: str) -> str | None:
    for key, text in request.query:
        if key == name:
            return text
    body = request.body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for item in body.get("parameter", []):
            if isinstance(item, dict) and item.get("name") == name:
                value = item.get("valueString") or item.get("valueCode")
                reference = (item.get("valueReference") or {}).get("reference")
                found = value or reference
                return str(found) if found else None
    return None


def explain(context: Context, request: FhirRequest, session: Session) -> FhirResponse:
    """``Consent/$explain``: why may ``actor`` (not) ``action`` ``resource``.

    For the client about their own dossier, and for administrators; the answer names the
    Consent and the provision that decided, or says that nothing permits it.
    """
    actor = _parameter(request, "actor") or ""
    target_ref = _parameter(request, "resource") or ""
    action = action_of(_parameter(request, "action") or "read")
    if "/" not in actor or "/" not in target_ref or action is None:
        raise Invalid(
            "$explain takes actor=Type/id, resource=Type/id and action: a consentaction code "
            "(access, use, disclose, collect, correct) or read / write"
        )
    res_type, res_id = target_ref.split("/", 1)
    current = session.current(res_type, res_id)
    if current is None or current.content is None:
        raise NotFound(f"{target_ref} is not known")
    patients = session.patients_of([current.pk]).get(current.pk, frozenset())
    caller = context.caller
    if isinstance(caller, ConsentCaller):
        who = caller.who
        mine = who.kind == Kind.PATIENT and who.patient in patients
        if not mine and who.kind != Kind.ADMIN:
            raise NotFound(f"{target_ref} is not known")
    kind = actor.split("/", 1)[0]
    subject = AccessContext(
        kind=Kind.SYSTEM if kind == "Organization" else Kind.PRACTITIONER,
        client_id="",
        scopes=parse_scopes("")[0],
        subject=actor,
        token_id="",
        user=actor if kind != "Organization" else None,
        organization=actor if kind == "Organization" else None,
    )
    actors = actors_of(session, subject)
    purpose = _parameter(request, "purpose")
    grants = load_grants(session, actors, action, purpose, context.services)
    resource = orjson.loads(current.content)
    decision = decide(grants, Target.of(resource, patients))
    parameters: list[dict[str, Any]] = [
        {"name": "decision", "valueCode": "permit" if decision.allowed else "deny"},
        {"name": "reason", "valueString": decision.reason},
    ]
    if decision.consent:
        parameters.append({"name": "consent", "valueReference": {"reference": decision.consent}})
    if decision.provision:
        parameters.append({"name": "provision", "valueString": decision.provision})
    parameters.extend({"name": "actor", "valueString": a} for a in sorted(actors))
    context.disclose(res_type, res_id)
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": parameters})


def break_the_glass(
    context: Context, request: FhirRequest, session: Session, resource_type: str, patient: str
) -> FhirResponse:
    """``Patient/{id}/$break-the-glass``: time-boxed emergency access for a practitioner.

    It writes a Consent in the client's dossier (active for four hours, policyRule BTG with
    the reason), which the client sees and can end; every access under it is logged with
    purpose BTG and the reason.
    """
    caller = context.caller
    if not isinstance(caller, ConsentCaller) or caller.who.kind != Kind.PRACTITIONER:
        raise Forbidden("Only a practitioner, logged in as a person, can break the glass")
    user = caller.who.user
    reason = (_parameter(request, "reason") or "").strip()
    if not reason or len(reason) > 500 or not user:
        raise Invalid("A reason (at most 500 characters) is required to break the glass")
    if session.current("Patient", patient) is None:
        raise NotFound(f"Patient/{patient} is not known")
    now = context.services.clock.now()
    until = now + dt.timedelta(hours=BREAK_GLASS_HOURS)
    consent = {
        "resourceType": "Consent",
        "id": context.services.ids.new(),
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": format_instant(now),
        "policyRule": {"coding": [{"system": _ACT_REASON, "code": "BTG"}], "text": reason},
        "provision": {
            "type": "permit",
            "period": {"start": format_instant(now), "end": format_instant(until)},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "v3-ParticipationType",
                                "code": "PRCP",
                            }
                        ]
                    },
                    "reference": {"reference": user},
                }
            ],
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "access",
                        }
                    ]
                }
            ],
        },
    }
    with session.unguarded("the Consent of a break-the-glass"):
        stored = session.put(consent, method="POST", must_create=True)
    caller.who = replace(caller.who, break_glass=reason)
    headers = {"Location": f"{context.services.base_url}/Consent/{stored.res_id}"}
    return FhirResponse(201, consent, headers)
