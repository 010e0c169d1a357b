"""SMART scopes, v1 and v2: parsed into rules that cap what a token may do.

A scope is an upper bound, never a grant: the client's Consent decides, and the scope only
narrows that decision further. ``patient/Observation.rs?category=...`` becomes a
:class:`ScopeRule` for type Observation, permissions read and search, and one search
condition that the gateway compiles into the query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl

__all__ = [
    "CONTEXT_SCOPES",
    "PERMISSION_OF_INTERACTION",
    "ScopeRule",
    "Scopes",
    "granted_scopes",
    "parse_scopes",
]

#: Identity and launch scopes: they grant no data at all.
CONTEXT_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access"}
)

#: The SMART v2 letter each FHIR interaction needs.
PERMISSION_OF_INTERACTION = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "search-system": "s",
    "history-type": "s",
    "history-system": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "$validate": "r",
    "$explain": "r",
    "$break-the-glass": "r",
    "$zrm-progress": "s",
    "$summary": "s",
    "$export": "s",
    "$export-status": "r",
    "$export-file": "r",
    "$operation": "r",  # a plugin's system operation: it checks its own scope
}

_V2 = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(c?r?u?d?s?)(\?.*)?$")
_V1 = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*)$")
_V1_LETTERS = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """One resource scope: context level, type (or ``*``), letters, optional conditions."""

    level: str  # patient | user | system
    resource_type: str  # a type or "*"
    permissions: frozenset[str]
    conditions: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def covers(self, resource_type: str, permission: str) -> bool:
        return permission in self.permissions and self.resource_type in ("*", resource_type)


@dataclass(frozen=True, slots=True)
class Scopes:
    """The scopes of a token: resource rules plus the identity/launch scopes."""

    rules: tuple[ScopeRule, ...]
    context: frozenset[str]

    @property
    def text(self) -> str:
        return " ".join(sorted({r.text for r in self.rules} | self.context))

    def levels(self) -> frozenset[str]:
        return frozenset(r.level for r in self.rules)

    def for_permission(self, permission: str) -> tuple[ScopeRule, ...]:
        return tuple(r for r in self.rules if permission in r.permissions)

    def narrowed(self, allowed: Scopes) -> Scopes:
        """These scopes, keeping only what ``allowed`` covers (a rule at a time)."""
        rules = tuple(r for r in self.rules if _within(r, allowed.rules))
        return Scopes(rules, self.context & allowed.context)


def _within(rule: ScopeRule, allowed: Iterable[ScopeRule]) -> bool:
    for bound in allowed:
        if bound.level != rule.level or bound.resource_type not in ("*", rule.resource_type):
            continue
        if not rule.permissions <= bound.permissions:
            continue
        if bound.conditions and set(bound.conditions) - set(rule.conditions):
            continue
        return True
    return False


def parse_scope(text: str) -> ScopeRule | None:
    """One resource scope, or None when ``text`` is not a resource scope at all."""
    found = _V1.match(text)
    if found:
        level, resource_type, v1 = found.groups()
        return ScopeRule(level, resource_type, frozenset(_V1_LETTERS[v1]), (), text)
    found = _V2.match(text)
    if found and found.group(3):
        level, resource_type, letters, query = found.groups()
        conditions = tuple(parse_qsl(query[1:], keep_blank_values=False)) if query else ()
        if query and not conditions:
            return None
        return ScopeRule(level, resource_type, frozenset(letters), conditions, text)
    return None


def parse_scopes(text: str | None) -> tuple[Scopes, list[str]]:
    """The scopes of a space-separated string, and the words that are no scope we know."""
    rules: list[ScopeRule] = []
    context: set[str] = set()
    unknown: list[str] = []
    for word in (text or "").split():
        if word in CONTEXT_SCOPES:
            context.add(word)
            continue
        rule = parse_scope(word)
        if rule is None:
            unknown.append(word)
        else:
            rules.append(rule)
    return Scopes(tuple(rules), frozenset(context)), unknown


@lru_cache(maxsize=1024)
def granted_scopes(text: str) -> Scopes:
    """The scopes of a verified token's ``scope`` claim, one object per text in a process.

    Every token verified with the same scopes gets the very same :class:`Scopes`: it is part
    of the keys under which a process keeps what it derived for a caller (ADR 0031), and a
    key compared with an equal but distinct copy walked every rule of it at every request
    (ADR 0033)."""
    return parse_scopes(text)[0]
