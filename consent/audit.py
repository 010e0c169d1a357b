"""NEN 7513 access-log entries as FHIR AuditEvents: one per patient per access.

The NEN 7513 fields map to AuditEvent (aligned with IHE ATNA, as the norm's field names
are): event type and action (``type``, ``subtype``, ``action``), date and time
(``recorded``), outcome; the user, their role and whether they asked (``agent`` with
``requestor``), the organisation responsible (an agent of type RESP), the app (an agent of
type Application with the client_id), the network address; the patient and the objects or
the query (``entity``); purpose of use (``purposeOfEvent``); the Consent that allowed it
(``agent.policy``); break-the-glass (purpose BTG, the reason with it).

One AuditEvent never names two patients: the client reads their own log through their own
compartment, and must not learn from it who else was looked at.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from consent.context import AccessContext, Kind
from mappings.core.clock import format_instant

__all__ = ["ACTION_OF_INTERACTION", "Access", "audit_event"]

_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_DICOM = "http://dicom.nema.org/resources/ontology/DCM"
_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"

#: The AuditEvent action of each interaction (BALP: searches and operations execute).
ACTION_OF_INTERACTION = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
}
_ROLE_OF_KIND = {
    Kind.PATIENT: ("PAT", "patient"),
    Kind.PRACTITIONER: ("PROV", "healthcare provider"),
    Kind.RELATED_PERSON: ("PRS", "personal relationship"),
    Kind.SYSTEM: ("ASSIGNED", "assigned entity"),
    Kind.ADMIN: ("ASSIGNED", "assigned entity"),
}


@dataclass(slots=True)
class Access:
    """What happened, for whom: one row of a client's access log."""

    interaction: str  # restful-interaction code, or an operation name like "$explain"
    outcome: str  # "0" success, "4" refused, "8" failed
    recorded: dt.datetime
    patient: str | None = None
    objects: Sequence[str] = ()  # "Observation/1"
    query: str | None = None  # the search query as asked
    consents: Sequence[str] = ()  # "Consent/5"
    description: str = ""  # why it was refused; never health data
    extra: dict[str, Any] = field(default_factory=dict)


def audit_event(context: AccessContext | None, access: Access, base_url: str) -> dict[str, Any]:
    """The AuditEvent for ``access`` by ``context`` (None: a caller without a valid token)."""
    if context is None:
        frame: dict[str, Any] = _frame_of(None, (), access.interaction, base_url)
        agents = frame["agent"]  # of its own: its network is set afterwards
        purpose = None
    else:
        frame, purpose = _kept_frame(context, tuple(access.consents), access.interaction, base_url)
        agents = list(frame["agent"])  # a list of its own: a caller may add one
    event = frame.copy()
    event["recorded"] = format_instant(access.recorded)
    event["outcome"] = access.outcome
    event["agent"] = agents
    if access.description:
        event["outcomeDesc"] = access.description
    if purpose:
        event["purposeOfEvent"] = [purpose]
    entities = _entities(access)
    if entities:
        event["entity"] = entities
    return event


@lru_cache(maxsize=1024)
def _kept_frame(
    context: AccessContext, consents: tuple[str, ...], interaction: str, base_url: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What every entry of a caller's interaction shares, made once (ADR 0051): the
    entry's first elements, in their order, and its purpose. Never changed: each entry
    copies the outer dict and the list of agents."""
    return _frame_of(context, consents, interaction, base_url), _purpose(context)


def _frame_of(
    context: AccessContext | None, consents: tuple[str, ...], interaction: str, base_url: str
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": _EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "action": ACTION_OF_INTERACTION.get(interaction, "E"),
        "recorded": None,  # each entry's own, in this place
        "outcome": None,
        "agent": _agents_of(context, consents, base_url),
        "source": {
            "site": base_url,
            "observer": {"display": "Eigen Dossier"},
            "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if not interaction.startswith("$"):
        frame["subtype"] = [{"system": _INTERACTION, "code": interaction}]
    else:
        frame["subtype"] = [{"system": f"{base_url}/OperationDefinition", "code": interaction}]
    return frame


def _purpose(context: AccessContext | None) -> dict[str, Any] | None:
    if context is None:
        return None
    if context.break_glass:
        return {
            "coding": [{"system": _PURPOSE, "code": "BTG", "display": "break the glass"}],
            "text": context.break_glass,
        }
    if context.purpose:
        return {"coding": [{"system": _PURPOSE, "code": context.purpose}]}
    return None


def _agents_of(
    context: AccessContext | None, consents: tuple[str, ...], base_url: str
) -> list[dict[str, Any]]:
    network = None
    if context is not None and context.network_address:
        network = {"address": context.network_address, "type": "2"}
    if context is None:
        agent: dict[str, Any] = {
            "type": {"coding": [{"system": _SECURITY_ROLE, "code": "humanuser"}]},
            "who": {"display": "unauthenticated caller"},
            "requestor": True,
        }
        return [agent]
    code, display = _ROLE_OF_KIND.get(context.kind, ("ASSIGNED", "assigned entity"))
    user: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": _PARTICIPATION, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "role": [{"coding": [{"system": _ROLE_CLASS, "code": code, "display": display}]}],
        "who": _who(context.user, context.subject),
        "altId": context.subject,
        "requestor": True,
    }
    if network:
        user["network"] = network
    if consents:
        user["policy"] = [f"{base_url}/{c}" for c in consents]
    agents = [
        user,
        {
            "type": {"coding": [{"system": _DICOM, "code": "110150", "display": "Application"}]},
            "who": {
                "identifier": {"system": f"{base_url}/oauth/clients", "value": context.client_id}
            },
            "requestor": False,
        },
    ]
    if context.organization or context.organization_identifier:
        agents.append(
            {
                "type": {
                    "coding": [
                        {"system": _PARTICIPATION, "code": "RESP", "display": "responsible party"}
                    ]
                },
                "who": _who(context.organization, context.organization_identifier),
                "requestor": False,
            }
        )
    return agents


def _who(reference: str | None, fallback: str | None) -> dict[str, Any]:
    if reference:
        return {"reference": reference}
    if fallback and "|" in fallback:
        system, _, value = fallback.partition("|")
        return {"identifier": {"system": system, "value": value}}
    return {"identifier": {"value": fallback or "unknown"}}


#: the entity codings, copied into each entity (a copy costs half a new dict literal: an
#: entry of a search names fifty records)
_PERSON = {"system": _ENTITY_TYPE, "code": "1", "display": "Person"}
_PATIENT_ROLE = {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"}
_SYSTEM_OBJECT = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
_DOMAIN_RESOURCE = {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
_QUERY_ROLE = {"system": _OBJECT_ROLE, "code": "24", "display": "Query"}


def _entities(access: Access) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    own = None
    if access.patient:
        own = f"Patient/{access.patient}"
        entities.append(
            {"what": {"reference": own}, "type": _PERSON.copy(), "role": _PATIENT_ROLE.copy()}
        )
    entities.extend(
        {
            "what": {"reference": reference},
            "type": _SYSTEM_OBJECT.copy(),
            "role": _DOMAIN_RESOURCE.copy(),
        }
        for reference in access.objects
        if reference != own
    )
    if access.query:
        entities.append(
            {
                "type": _SYSTEM_OBJECT.copy(),
                "role": _QUERY_ROLE.copy(),
                "query": base64.b64encode(access.query.encode()).decode(),
            }
        )
    return entities
