"""The operations of the consent model: ``Consent/$explain`` and ``Patient/{id}/$break-the-glass``.

``$explain`` says why an actor may or may not act on a resource (the decision, the Consent
and provision that decided); ``$break-the-glass`` opens one client's dossier to a
practitioner for four hours, as a Consent the client sees, every access logged with the
reason. Their OperationDefinitions are in :mod:`mappings.care.operations`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import orjson

from consent.context import AccessContext, Kind
from consent.policy import (
    CONSENT_SCOPE,
    Target,
    action_of,
    decide,
)
from consent.scopes import parse_scopes
from gateway.interactions.authorize import ConsentCaller
from gateway.interactions.grants import actors_of, load_grants
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.store.repository import Session
from mappings.core.clock import format_instant
from mappings.core.errors import Forbidden, Invalid, NotFound

#: who an actor of ``$explain`` is, as a caller
_KIND_OF_ACTOR = {"Organization": Kind.SYSTEM, "RelatedPerson": Kind.RELATED_PERSON}

__all__ = ["BREAK_GLASS_HOURS", "break_the_glass", "explain"]


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
        kind=_KIND_OF_ACTOR.get(kind, Kind.PRACTITIONER),
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
