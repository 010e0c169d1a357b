"""Why may this caller do this to this resource: the whole access decision, in one module.

Inputs: who asks (:class:`~consent.context.AccessContext`: the kind of caller, their own
patient, their scopes), the SMART letter the interaction needs (``c r u d s``), which resource
types are served and which of them lie in a client's dossier, and the grants: the client's
Consents reduced to rules for this caller, action, purpose and moment
(:func:`consent.policy.grant_from`). No database, no web framework.

The decision, step by step (docs/consent.md says the same in words):

1. **Scopes cap.** Only the caller's scopes of their own level (``patient/``, ``user/``,
   ``system/``) that carry the letter count. A scope names types, or types under search
   conditions (granular scopes, decided in the query only). No scope: nothing.
2. **Administrators** reach the directory (types outside every dossier) and, to read, the
   access log; never a client's dossier.
3. **The access log** (AuditEvent) is the client's to read and nobody's to write.
4. **The client** reaches their own dossier and the directory; they write only their
   dossier, never the shared directory.
5. **Everyone else** reaches the directory and, in a dossier, exactly what the client's
   Consents permit them (:func:`consent.policy.decide`: a nested deny wins; a resource in
   several clients' dossiers needs each of them).

:func:`reach` answers steps 1-5 for a request as a :class:`Reach`, which the gateway's store
compiles into the SQL of every query (never a filter on results). :func:`admits` answers
them in Python for one resource about to be written, and for tests that hold the SQL to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from consent.context import AccessContext, Kind
from consent.policy import Decision, Grant, Target, decide
from consent.scopes import ScopeRule

__all__ = ["AUDIT_TYPE", "Reach", "admits", "reach", "write_refusal"]

AUDIT_TYPE = "AuditEvent"
_LEVEL = {
    Kind.PATIENT: "patient",
    Kind.PRACTITIONER: "user",
    Kind.RELATED_PERSON: "user",
    Kind.ADMIN: "user",
    Kind.SYSTEM: "system",
}


@dataclass(frozen=True, slots=True)
class Reach:
    """What one request may reach.

    ``types``: None is every type. ``patients``: None is every dossier; otherwise a resource
    of a ``compartment_types`` type is reached when it lies in the dossier of one of these
    patients (the caller's own) or ``grants`` permit it. ``conditional``: per type, the
    granular scopes whose search conditions a resource of that type must meet (one of them).
    """

    types: frozenset[str] | None = None
    patients: frozenset[str] | None = None
    compartment_types: frozenset[str] = field(default_factory=frozenset)
    grants: tuple[Grant, ...] = ()
    conditional: tuple[tuple[str, tuple[ScopeRule, ...]], ...] = ()

    @classmethod
    def nothing(cls) -> Reach:
        return cls(types=frozenset())


def reach(
    who: AccessContext,
    letter: str,
    served: frozenset[str],
    compartment: frozenset[str],
    grants: Callable[[str], tuple[Grant, ...]],
) -> Reach:
    """What ``who`` may reach with an interaction that needs ``letter``.

    ``grants(action)`` gives the caller's grants for ``read`` or ``write``; it is asked
    only for callers who need them (not the client, not administrators).
    """
    rules = [r for r in who.scopes.for_permission(letter) if r.level == _LEVEL[who.kind]]
    if not rules:
        return Reach.nothing()
    types, conditional = _scope_bounds(rules, served)
    writing = letter in "cud"
    directory = served - compartment
    if who.kind == Kind.ADMIN:
        if writing:
            return Reach(types=types & directory)
        return Reach(types=(types & directory) | ({AUDIT_TYPE} & types))
    if who.kind != Kind.PATIENT or writing:
        types = types - {AUDIT_TYPE}
    conditional = tuple((t, c) for t, c in conditional if t in types)
    if who.kind == Kind.PATIENT:
        if writing:
            types = types & compartment
        own = frozenset({who.patient}) if who.patient else frozenset()
        return Reach(types, own, compartment, (), conditional)
    action = "write" if writing else "read"
    return Reach(types, frozenset(), compartment, grants(action), conditional)


def _scope_bounds(
    rules: list[ScopeRule], served: frozenset[str]
) -> tuple[frozenset[str], tuple[tuple[str, tuple[ScopeRule, ...]], ...]]:
    """The types the scopes open, and the types they open only under conditions."""
    plain = {r.resource_type for r in rules if not r.conditions}
    types = served if "*" in plain else frozenset(plain & served)
    conditional: dict[str, list[ScopeRule]] = {}
    for rule in rules:
        if not rule.conditions or rule.resource_type in plain or "*" in plain:
            continue
        if rule.resource_type == "*" or rule.resource_type not in served:
            continue  # a condition on every type is not a supported granular scope
        conditional.setdefault(rule.resource_type, []).append(rule)
    types = types | frozenset(conditional)
    return types, tuple((t, tuple(c)) for t, c in sorted(conditional.items()))


def admits(scope: Reach, target: Target) -> Decision:
    """Whether a resource (version) about to be written lies within ``scope``.

    Every client whose dossier would hold it must be the caller's own or permit it: a
    client cannot write into a household's plan what another member has not allowed, nor
    add a stranger to their household. A type held back by granular-scope conditions is
    not admitted: those conditions are search expressions, decided in the query only.
    """
    if scope.types is not None and target.resource_type not in scope.types:
        return Decision(False, reason="the token's scopes do not reach this type")
    if any(t == target.resource_type for t, _ in scope.conditional):
        return Decision(False, reason="a granular scope is decided in searches only")
    if scope.patients is None or target.resource_type not in scope.compartment_types:
        return Decision(True, reason="outside every dossier, or unrestricted")
    if not target.patients:
        return Decision(False, reason="in no client's dossier")
    others = target.patients - scope.patients
    if not others:
        return Decision(True, reason="the client's own dossier")
    return decide(scope.grants, replace(target, patients=others))


def write_refusal(who: AccessContext, resource: Mapping[str, Any]) -> str | None:
    """Why ``who`` may not write ``resource`` whatever their reach (None: no such reason).

    Only the client makes a Consent active: a care team records it as ``proposed`` and
    the client confirms it (docs/adr/0005).
    """
    if (
        resource.get("resourceType") == "Consent"
        and who.kind != Kind.PATIENT
        and resource.get("status") == "active"
    ):
        return (
            "Only the client can make a consent active; record it as proposed and the client "
            "confirms it"
        )
    return None
