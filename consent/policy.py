"""The client's Consent resources, compiled into rules for one request, and decided.

Supported subset of R4 Consent (anything else is refused with an OperationOutcome, see
:func:`check_consent`; docs/consent.md explains each choice):

- ``scope`` patient-privacy, ``patient`` a literal ``Patient/id``, ``policyRule`` or
  ``policy`` present (ppc-1), ``provision`` present.
- The root provision may carry no ``type`` (as in R4's own examples): its decision then
  comes from ``policyRule`` (OPTIN permits, OPTOUT denies) and its conditions and nested
  provisions refine it. Nested provisions state their ``type``.
- ``provision.actor.reference``: literal references to Practitioner, PractitionerRole,
  Organization, CareTeam or RelatedPerson, in a recipient role (``IRCP``, ``PRCP``) or none:
  a custodian or author role speaks of where data came from, which is not enforced here.
  A root that permits names at least one actor (a consent to everyone is not the specified
  consent the Wabvpz asks); nested provisions without actors inherit their parent's; a
  root that denies without actors denies everyone, and nested permits name whom it lets in.
- ``provision.action``: ``access``, ``use``, ``disclose``, ``collect`` mean read;
  ``correct`` means write. No action at all means read only (never write by omission).
- ``provision.class``: resource types (system http://hl7.org/fhir/resource-types).
- ``provision.data``: ``meaning`` instance with a literal reference.
- ``provision.securityLabel``, ``provision.period``, ``provision.purpose``.
- nesting up to three levels; among matching siblings a deny wins (nested deny provisions
  win over the permit above them).

Not supported, refused: ``provision.code``, ``provision.dataPeriod``, ``data.meaning`` other
than instance, class codes that are profiles or unknown types, actors by identifier only.

The same rule tree is evaluated in Python here (for ``$explain`` and write checks) and
compiled into SQL by the gateway's store (for reads and searches), so the two cannot
disagree about a resource: a property test holds them to that.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mappings.core.errors import Issue

__all__ = [
    "ACTOR_TYPES",
    "action_of",
    "CONSENT_SCOPE",
    "Decision",
    "Grant",
    "Request",
    "Rule",
    "Selector",
    "Target",
    "check_consent",
    "decide",
    "grant_from",
    "next_change",
    "period_contains",
    "root_decision",
]

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
ACTOR_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "CareTeam", "RelatedPerson"}
)
_READ_ACTIONS = frozenset({"access", "use", "disclose", "collect"})
_WRITE_ACTIONS = frozenset({"correct"})
_MAX_DEPTH = 3
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_RECIPIENT_ROLES = frozenset({"IRCP", "PRCP"})
_POLICY_DECISION = {"OPTIN": "permit", "OPTOUT": "deny"}
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_UNSUPPORTED = ("code", "dataPeriod")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which resources a provision speaks of; None means "not constrained"."""

    types: frozenset[str] | None = None
    ids: frozenset[tuple[str, str]] | None = None
    labels: frozenset[tuple[str, str]] | None = None  # (system, code) of meta.security

    def matches(self, target: Target) -> bool:
        if self.types is not None and target.resource_type not in self.types:
            return False
        if self.ids is not None and (target.resource_type, target.resource_id) not in self.ids:
            return False
        if self.labels is None:
            return True
        return any(
            code == t_code and (not system or system == t_system)
            for system, code in self.labels
            for t_system, t_code in target.labels
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """A provision that applies to this request: permit or deny, what, and its exceptions."""

    permit: bool
    selector: Selector
    exceptions: tuple[Rule, ...]
    path: str  # e.g. "Consent.provision.provision[1]"


@dataclass(frozen=True, slots=True)
class Grant:
    """One active Consent of one patient, reduced to the rules for this request."""

    consent: str  # "Consent/id"
    patient: str  # the patient id
    rule: Rule
    emergency: str | None = None  # the reason, for a break-the-glass grant


@dataclass(frozen=True, slots=True)
class Request:
    """Who asks, to do what, for which purpose, when."""

    actors: frozenset[str]  # literal references: Practitioner/1, Organization/2, ...
    action: str  # "read" or "write"
    purpose: str | None
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class Target:
    """A resource as the policy sees it."""

    resource_type: str
    resource_id: str
    patients: frozenset[str]
    labels: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @classmethod
    def of(cls, resource: Mapping[str, Any], patients: Iterable[str]) -> Target:
        labels = frozenset(
            (str(c.get("system", "")), str(c.get("code", "")))
            for c in (resource.get("meta") or {}).get("security", [])
            if isinstance(c, dict)
        )
        return cls(
            str(resource.get("resourceType")), str(resource.get("id")), frozenset(patients), labels
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and the Consent and provision that decided (None: nothing did)."""

    allowed: bool
    consent: str | None = None
    provision: str | None = None
    reason: str = ""


# -- checking a Consent against the supported subset --------------------------------


def check_consent(resource: Mapping[str, Any], served_types: frozenset[str]) -> list[Issue]:
    """The reasons ``resource`` lies outside the Consent subset we enforce (empty: inside)."""
    issues: list[Issue] = []

    def refuse(text: str, path: str) -> None:
        issues.append(Issue("error", "not-supported", text, (path,)))

    codes = {
        c.get("code")
        for c in (resource.get("scope") or {}).get("coding", [])
        if c.get("system") == CONSENT_SCOPE
    }
    if "patient-privacy" not in codes:
        refuse("Only Consents of scope patient-privacy are enforced here", "Consent.scope")
    patient = (resource.get("patient") or {}).get("reference", "")
    found = _REFERENCE.match(patient)
    if not found or found.group(1) != "Patient":
        refuse("Consent.patient must be a literal reference to a Patient", "Consent.patient")
    if not resource.get("policyRule") and not resource.get("policy"):
        issues.append(
            Issue("error", "invariant", "ppc-1: either a policy or a policyRule", ("Consent",))
        )
    provision = resource.get("provision")
    if not isinstance(provision, dict):
        refuse("A Consent without provision grants nothing; state what it permits", "Consent")
        return issues
    root_type = root_decision(resource)
    if root_type is None:
        refuse(
            "The root provision states its type, or policyRule is OPTIN or OPTOUT",
            "Consent.provision.type",
        )
    _check_provision(
        {**provision, "type": root_type}, "Consent.provision", 1, served_types, refuse, root=True
    )
    return issues


def root_decision(resource: Mapping[str, Any]) -> str | None:
    """The root provision's decision: its ``type``, or else what ``policyRule`` says
    (OPTIN permits, OPTOUT denies); None when neither says."""
    provision = resource.get("provision")
    stated = provision.get("type") if isinstance(provision, dict) else None
    if stated in ("permit", "deny"):
        return str(stated)
    if stated is not None:
        return None
    policy = resource.get("policyRule")
    codings = policy.get("coding", []) if isinstance(policy, dict) else []
    decisions = {
        _POLICY_DECISION[str(c.get("code"))]
        for c in codings
        if isinstance(c, dict)
        and c.get("system") == _ACT_CODE
        and c.get("code") in _POLICY_DECISION
    }
    return decisions.pop() if len(decisions) == 1 else None


def _check_provision(
    provision: Mapping[str, Any],
    path: str,
    depth: int,
    served: frozenset[str],
    refuse: Any,
    *,
    root: bool = False,
    named: bool = False,
) -> None:
    """``named``: an enclosing provision names actors, whom this one speaks of too."""
    if depth > _MAX_DEPTH:
        refuse(f"Provisions nest at most {_MAX_DEPTH} levels deep", path)
        return
    if provision.get("type") not in ("permit", "deny") and not root:
        refuse("A nested provision states its type: permit or deny", f"{path}.type")
    for name in _UNSUPPORTED:
        if name in provision:
            refuse(f"provision.{name} is not enforced here; use class, data or a label", path)
    named = named or bool(provision.get("actor"))
    if provision.get("type") == "permit" and not named:
        refuse(
            "A permit names who it permits: a consent to everyone is not a specified consent",
            f"{path}.actor",
        )
    _check_elements(provision, path, served, refuse)
    for i, child in enumerate(provision.get("provision", [])):
        _check_provision(child, f"{path}.provision[{i}]", depth + 1, served, refuse, named=named)


def _check_elements(
    provision: Mapping[str, Any], path: str, served: frozenset[str], refuse: Any
) -> None:
    for i, actor in enumerate(provision.get("actor", [])):
        reference = ((actor or {}).get("reference") or {}).get("reference", "")
        found = _REFERENCE.match(reference)
        if not found or found.group(1) not in ACTOR_TYPES:
            refuse(
                "An actor is a literal reference to a Practitioner, PractitionerRole, "
                "Organization, CareTeam or RelatedPerson",
                f"{path}.actor[{i}].reference",
            )
        roles = [
            c for c in ((actor or {}).get("role") or {}).get("coding", []) if isinstance(c, dict)
        ]
        if roles and not any(
            c.get("system") == _PARTICIPATION and c.get("code") in _RECIPIENT_ROLES for c in roles
        ):
            refuse(
                "An actor receives the data (role IRCP or PRCP); a custodian or author role "
                "speaks of the data's source, which is not enforced here",
                f"{path}.actor[{i}].role",
            )
    for i, action in enumerate(provision.get("action", [])):
        words = {c.get("code") for c in (action or {}).get("coding", [])}
        if not words & (_READ_ACTIONS | _WRITE_ACTIONS):
            refuse("Known actions: access, use, disclose, collect, correct", f"{path}.action[{i}]")
    for i, coding in enumerate(provision.get("class", [])):
        if coding.get("system") != RESOURCE_TYPES or coding.get("code") not in served:
            refuse("provision.class names resource types served here", f"{path}.class[{i}]")
    for i, data in enumerate(provision.get("data", [])):
        reference = ((data or {}).get("reference") or {}).get("reference", "")
        if data.get("meaning") != "instance" or not _REFERENCE.match(reference):
            refuse("provision.data is an instance with a literal reference", f"{path}.data[{i}]")


# -- reducing a Consent to the rules of one request -----------------------------------


def grant_from(resource: Mapping[str, Any], request: Request) -> Grant | None:
    """The rules ``resource`` sets for ``request``; None when it has nothing to say."""
    if resource.get("status") != "active":
        return None
    found = _REFERENCE.match((resource.get("patient") or {}).get("reference", ""))
    provision = resource.get("provision")
    decision = root_decision(resource)
    if not found or not isinstance(provision, dict) or decision is None:
        return None
    root = {**provision, "type": decision}
    rule = _rule(root, "Consent.provision", request, inherited_actor=True)
    if rule is None:
        return None
    policy = resource.get("policyRule") or {}
    emergency = None
    if any(c.get("code") == "BTG" for c in policy.get("coding", [])):
        emergency = str(policy.get("text") or "break the glass")
    return Grant(f"Consent/{resource.get('id')}", found.group(2), rule, emergency)


def action_of(code: str) -> str | None:
    """``read`` or ``write`` for a consentaction code (access, use, disclose, collect:
    reading; correct: writing) or for ``read`` / ``write`` themselves; None otherwise."""
    if code in _READ_ACTIONS or code == "read":
        return "read"
    if code in _WRITE_ACTIONS or code == "write":
        return "write"
    return None


def next_change(resource: Mapping[str, Any], now: dt.datetime) -> dt.datetime | None:
    """The first instant after ``now`` at which a period of ``resource``'s provisions starts
    or ends, so that :func:`grant_from` may answer differently; None when none will.

    Until then the grant of ``resource`` for a request of the same actors, action and
    purpose stays what it is now; a cache of grants holds until the earliest such instant.
    """
    found: list[dt.datetime] = []
    provisions = [resource.get("provision")]
    while provisions:
        provision = provisions.pop()
        if not isinstance(provision, dict):
            continue
        period = provision.get("period") or {}
        if isinstance(period, dict):
            if start := period.get("start"):
                found.append(_bounds(start)[0])
            if end := period.get("end"):
                last = _bounds(end)[1]
                if last < _LAST:
                    found.append(last + dt.timedelta(microseconds=1))
        provisions.extend(provision.get("provision") or [])
    later = [moment for moment in found if moment > now]
    return min(later, default=None)


def _applies(provision: Mapping[str, Any], request: Request, *, inherited_actor: bool) -> bool:
    """Whether a provision speaks to this actor, action, purpose and moment.

    No actors: the parent's (a permit at the root must name some). No actions: a permit
    allows reading only, a deny denies every action.
    """
    permit = provision.get("type") == "permit"
    if not period_contains(provision.get("period"), request.now):
        return False
    actors = {
        ((a or {}).get("reference") or {}).get("reference") for a in provision.get("actor", [])
    }
    if actors and not actors & request.actors:
        return False
    if not actors and not inherited_actor and permit:
        return False
    actions = {
        c.get("code") for a in provision.get("action", []) for c in (a or {}).get("coding", [])
    }
    wanted = _WRITE_ACTIONS if request.action == "write" else _READ_ACTIONS
    if actions and not actions & wanted:
        return False
    if not actions and permit and request.action == "write":
        return False
    purposes = {c.get("code") for c in provision.get("purpose", [])}
    return not purposes or request.purpose in purposes


def _rule(
    provision: Mapping[str, Any], path: str, request: Request, *, inherited_actor: bool
) -> Rule | None:
    if not _applies(provision, request, inherited_actor=inherited_actor):
        return None
    has_actor = bool(provision.get("actor")) or inherited_actor
    exceptions = []
    for i, child in enumerate(provision.get("provision", [])):
        rule = _rule(child, f"{path}.provision[{i}]", request, inherited_actor=has_actor)
        if rule is not None:
            exceptions.append(rule)
    return Rule(provision.get("type") == "permit", _selector(provision), tuple(exceptions), path)


def _selector(provision: Mapping[str, Any]) -> Selector:
    types = frozenset(str(c.get("code")) for c in provision.get("class", []))
    ids = frozenset(
        (found.group(1), found.group(2))
        for d in provision.get("data", [])
        if (found := _REFERENCE.match(((d or {}).get("reference") or {}).get("reference", "")))
    )
    labels = frozenset(
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in provision.get("securityLabel", [])
    )
    return Selector(types or None, ids or None, labels or None)


# -- deciding one resource ------------------------------------------------------------


def decide(grants: Sequence[Grant], target: Target) -> Decision:
    """Whether ``target`` is allowed by ``grants``; the first permitting Consent is named.

    A resource in the dossiers of several clients (a household's plan, a household) is
    allowed only when each of them permits it: one client cannot open what is also
    another's. Such a decision names no Consent: one client's Consents are not shown to
    another.
    """
    if len(target.patients) == 1:
        return _decide_for(next(iter(target.patients)), grants, target)
    if not target.patients:
        return Decision(False, None, None, "no consent of the client permits this")
    if all(_decide_for(p, grants, target).allowed for p in target.patients):
        return Decision(True, None, None, "permitted by each client whose dossier holds it")
    return Decision(False, None, None, "not each client whose dossier holds it permits this")


def _decide_for(patient: str, grants: Sequence[Grant], target: Target) -> Decision:
    """What the Consents of one client whose dossier holds ``target`` say of it."""
    denied: Decision | None = None
    for grant in grants:
        if grant.patient != patient:
            continue
        verdict = _verdict(grant.rule, target)
        if verdict is None:
            continue
        permit, path = verdict
        if permit:
            return Decision(True, grant.consent, path, "permitted by the client's consent")
        denied = denied or Decision(False, grant.consent, path, "denied by the client's consent")
    return denied or Decision(False, None, None, "no consent of the client permits this")


def _verdict(rule: Rule, target: Target) -> tuple[bool, str] | None:
    """The deepest decision of ``rule`` on ``target``: a matching deny child wins."""
    if not rule.selector.matches(target):
        return None
    found = [v for e in rule.exceptions if (v := _verdict(e, target)) is not None]
    for permit, path in found:
        if not permit:
            return False, path
    if found:
        return found[0]
    return rule.permit, rule.path


# -- periods --------------------------------------------------------------------------

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$", re.ASCII)
_LAST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _bounds(text: str) -> tuple[dt.datetime, dt.datetime]:
    """The first and last instant a FHIR dateTime (perhaps partial) can mean."""
    found = _PARTIAL.match(text)
    if found:
        year, month, day = (int(g) if g else None for g in found.groups())
        assert year is not None
        start = dt.datetime(year, month or 1, day or 1, tzinfo=dt.UTC)
        if day is not None:
            days = 1
        elif month is not None:
            days = calendar.monthrange(year, month)[1]
        else:
            days = 366 if calendar.isleap(year) else 365
        if start >= _LAST - dt.timedelta(days=days):  # the last day a datetime can hold
            return start, _LAST
        return start, start + dt.timedelta(days=days, microseconds=-1)
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment, moment


def period_contains(period: Mapping[str, Any] | None, now: dt.datetime) -> bool:
    """Whether ``now`` lies in a FHIR Period (an absent bound is open)."""
    if not period:
        return True
    start, end = period.get("start"), period.get("end")
    if start and now < _bounds(start)[0]:
        return False
    return not (end and now > _bounds(end)[1])
