"""Consent resources for the tests, written as a client portal would write them."""

from __future__ import annotations

from typing import Any

PSY = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
ACCESS = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]
}
CORRECT = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "correct"}]
}


def privacy_consent(
    cid: str, patient: str, provision: dict[str, Any], status: str = "active"
) -> dict:
    """A privacy Consent (opt-in) of ``patient`` with ``provision``."""
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": provision,
    }


def actor(reference: str) -> dict[str, Any]:
    """A provision actor: the recipient ``reference``."""
    role = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    return {"role": {"coding": [role]}, "reference": {"reference": reference}}


def classes(*names: str) -> list[dict[str, str]]:
    """Provision classes naming resource types."""
    return [{"system": "http://hl7.org/fhir/resource-types", "code": n} for n in names]
