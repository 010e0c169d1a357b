"""The client's grants as the portal offers them: categories in, Consents out, and back.

A grant made in the portal is an ordinary FHIR R4 Consent in the subset the gateway
enforces (docs/consent.md): one recipient, reading only, an end date, and what they may see
as categories:

- a choice of categories is a root provision that *denies* the recipient everything, with
  one nested *permit* per category (resource types, or the crisis plans as instances):
  nested permits are the exceptions to the deny, so the recipient sees the union of the
  categories and nothing else;
- "everything except mental-health notes" is a root *permit* with a nested *deny* of
  resources labelled ``PSY`` (v3-ActCode, psychiatry information sensitivity) in
  ``meta.security``.

Every grant also lets the recipient see the client's Patient resource (name, birth date),
so that what they see has a name; the portal says so beside the form.

:func:`describe` turns any Consent (made here or elsewhere) back into the words the portal
shows: who, which categories or types, until when. Pure functions: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATEGORIES",
    "EXCEPT_LABEL",
    "Described",
    "consent_for",
    "describe",
]

_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
_TYPES = "http://hl7.org/fhir/resource-types"
_LOINC_PRIVACY = "59284-0"

#: what a category lets the recipient see, as resource types (the crisis plan: instances)
CATEGORIES: dict[str, tuple[str, ...]] = {
    "plan": ("CarePlan", "Goal", "CareTeam", "Condition"),
    "scores": ("Observation", "QuestionnaireResponse"),
    "visits": ("Encounter", "Procedure"),
    "crisis": (),  # the client's crisis plans, each by its reference
}
#: the label of mental-health notes, which "everything except" keeps back
EXCEPT_LABEL = (_ACT_CODE, "PSY")
ALL = "all"
_ALWAYS = "Patient"


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def consent_for(
    patient: str,
    actor: str,
    categories: Sequence[str],
    end: dt.date,
    *,
    crisis_plans: Sequence[str] = (),
    served: frozenset[str] | None = None,
    now: dt.datetime,
    consent_id: str | None = None,
) -> dict[str, Any]:
    """The Consent by which ``patient`` lets ``actor`` read ``categories`` until ``end``.

    ``categories``: keys of :data:`CATEGORIES`, or ``["all"]`` for everything except
    mental-health notes. ``crisis_plans``: the ``CarePlan/id`` of the client's crisis
    plans (the ``crisis`` category). ``served``: the types the server serves (a category's
    type the server does not serve is left out). ``ValueError`` for a choice that gives
    nothing.
    """
    recipient = {"role": _coding(_PARTICIPATION, "IRCP"), "reference": {"reference": actor}}
    period = {"start": now.isoformat(timespec="seconds"), "end": end.isoformat()}
    access = [_coding(_ACTION, "access")]
    if list(categories) == [ALL]:
        system, code = EXCEPT_LABEL
        provision: dict[str, Any] = {
            "type": "permit",
            "period": period,
            "actor": [recipient],
            "action": access,
            "provision": [{"type": "deny", "securityLabel": [{"system": system, "code": code}]}],
        }
    else:
        nested = []
        for category in dict.fromkeys(categories):
            if category not in CATEGORIES:
                raise ValueError(f"unknown category {category[:40]}")
            if category == "crisis":
                if crisis_plans:
                    nested.append(
                        {
                            "type": "permit",
                            "data": [
                                {"meaning": "instance", "reference": {"reference": ref}}
                                for ref in crisis_plans
                            ],
                        }
                    )
                continue
            types = [t for t in CATEGORIES[category] if served is None or t in served]
            nested.append(
                {"type": "permit", "class": [{"system": _TYPES, "code": t} for t in types]}
            )
        if not nested:
            raise ValueError("nothing chosen")
        nested.insert(0, {"type": "permit", "class": [{"system": _TYPES, "code": _ALWAYS}]})
        provision = {
            "type": "deny",
            "period": period,
            "actor": [recipient],
            "action": access,
            "provision": nested,
        }
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": _coding(_SCOPE, "patient-privacy"),
        "category": [_coding("http://loinc.org", _LOINC_PRIVACY)],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": now.isoformat(timespec="seconds"),
        "policyRule": _coding(_ACT_CODE, "OPTIN"),
        "provision": provision,
    }
    if consent_id:
        consent["id"] = consent_id
    return consent


@dataclass(frozen=True, slots=True)
class Described:
    """What a Consent says, in the terms the portal shows."""

    actors: tuple[str, ...]  # literal references
    categories: tuple[str, ...]  # keys of CATEGORIES, or "all"
    types: tuple[str, ...]  # types permitted outside any category (another app's Consent)
    instances: tuple[str, ...]  # single resources permitted outside the crisis plans
    everything: bool  # the whole dossier (perhaps with exceptions)
    except_labels: tuple[str, ...]  # codes of the security labels kept back
    writes: bool  # may also record (action correct)
    start: str | None
    end: str | None
    made_here: bool  # the shape the portal writes, so it can be changed in the portal
    emergency: str | None = None  # a break-the-glass Consent: the reason given


def _codes(value: Any, system: str | None = None) -> list[str]:
    found = []
    for concept in value if isinstance(value, list) else [value]:
        if not isinstance(concept, Mapping):
            continue
        for coding in concept.get("coding", []) if "coding" in concept else [concept]:
            if isinstance(coding, Mapping) and (system is None or coding.get("system") == system):
                found.append(str(coding.get("code", "")))
    return found


def _refs(provision: Mapping[str, Any]) -> list[str]:
    return [
        str(((a or {}).get("reference") or {}).get("reference", ""))
        for a in provision.get("actor", [])
        if isinstance(a, Mapping)
    ]


def describe(consent: Mapping[str, Any], crisis_plans: Sequence[str] = ()) -> Described:
    """The words for ``consent``: its recipients, what they may see, until when."""
    root = consent.get("provision") or {}
    nested = [p for p in root.get("provision", []) if isinstance(p, Mapping)]
    kind = root.get("type") or (
        "permit" if "OPTIN" in _codes(consent.get("policyRule")) else "deny"
    )
    actions = set(_codes(root.get("action", [])))
    period = root.get("period") or {}
    types: list[str] = []
    instances: list[str] = []
    labels: list[str] = []
    everything = False
    if kind == "permit":
        root_types = _codes(root.get("class", []))
        everything = not root_types and not root.get("data")
        types.extend(root_types)
        instances.extend(
            str((d.get("reference") or {}).get("reference", "")) for d in root.get("data", [])
        )
        for child in nested:
            if child.get("type") == "deny":
                labels.extend(str(s.get("code", "")) for s in child.get("securityLabel", []))
    else:
        for child in nested:
            if child.get("type") != "permit":
                continue
            types.extend(_codes(child.get("class", [])))
            instances.extend(
                str((d.get("reference") or {}).get("reference", "")) for d in child.get("data", [])
            )
    categories: list[str] = []
    rest = [t for t in dict.fromkeys(types) if t != _ALWAYS]
    for name, category_types in CATEGORIES.items():
        if category_types and category_types[0] in rest:  # named by its principal type
            categories.append(name)
            rest = [t for t in rest if t not in category_types]
    crisis = [i for i in instances if i in crisis_plans]
    if crisis:
        categories.append("crisis")
    policy = consent.get("policyRule") or {}
    emergency = (
        str(policy.get("text") or "") if "BTG" in _codes(consent.get("policyRule")) else None
    )
    made_here = (kind == "deny" and bool(nested)) or (everything and labels == [EXCEPT_LABEL[1]])
    return Described(
        actors=tuple(dict.fromkeys(_refs(root) + [r for c in nested for r in _refs(c)])),
        categories=(ALL,) if everything else tuple(categories),
        types=tuple(rest),
        instances=tuple(i for i in instances if i not in crisis),
        everything=everything,
        except_labels=tuple(labels),
        writes="correct" in actions,
        start=period.get("start"),
        end=period.get("end"),
        made_here=made_here and "correct" not in actions and emergency is None,
        emergency=emergency,
    )
