"""Who is asking: the access context built from a verified token, once per request."""

from __future__ import annotations

from dataclasses import dataclass, field

from consent.scopes import Scopes

__all__ = ["AccessContext", "Kind"]


class Kind:
    """What kind of caller a token speaks for."""

    PATIENT = "patient"  # the client, on their own dossier
    PRACTITIONER = "practitioner"  # a person of a care team, GP practice, ...
    RELATED_PERSON = "related-person"  # a member of the client's network (mother, neighbour)
    SYSTEM = "system"  # a backend service of an organisation (GP system, insurer)
    ADMIN = "admin"  # an administrator of this gateway: apps, audit review, explain


@dataclass(frozen=True, slots=True)
class AccessContext:
    """The verified caller: app, user, organisation, patient in context, scopes, purpose.

    ``actors`` are the literal references a Consent can name to permit this caller: the
    user (Practitioner/x), their roles, care teams and organisation, or the app's
    organisation for a backend service.
    """

    kind: str
    client_id: str
    scopes: Scopes
    subject: str  # the account or the client_id
    token_id: str
    user: str | None = None  # fhirUser: Patient/1, Practitioner/2
    patient: str | None = None  # the patient id in context
    organization: str | None = None  # Organization/id
    organization_identifier: str | None = None  # system|value (AGB, URA)
    purpose: str | None = None  # v3-PurposeOfUse code
    authorization: str | None = None  # the app authorization (refresh family) it came from
    actors: frozenset[str] = field(default_factory=frozenset)
    network_address: str | None = None
    break_glass: str | None = None  # the reason, when the glass was broken
