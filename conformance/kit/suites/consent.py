"""``consent``: the client decides, inside every query; the client sees who looked.

Two parties: the client (``--patient-login``) and a backend app (``--client-id``, ``--key``)
of an organisation, the grantee (``--grantee Organization/ID``; on an Eigen Dossier gateway
found from the app's AGB/URA identifier). The client writes a Consent for the grantee, the
app reads, the client withdraws it, the app reads again: each step is checked on its own,
and so are the paths a leak would take (totals, includes, chains, ``_has``, history).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from conformance.kit.model import OURS, Skipped, check, expect
from conformance.kit.session import Session

#: the checks join the catalogue when this module is imported; nothing is imported from it
__all__: list[str] = []

_DOCS = f"{OURS}/consent.md"
_CODE = "29463-7"  # body weight: what the kit's secret Observation records


def grantee(session: Session) -> str:
    if session.options.grantee:
        return session.options.grantee
    if "grantee" not in session.facts:
        token = session.backend_token()
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            raise Skipped("needs --grantee: the organisation the backend app acts for") from None
        identifier = claims.get("org_id") if isinstance(claims, dict) else None
        if not identifier:
            raise Skipped("needs --grantee: the organisation the backend app acts for")
        patient_token, _ = session.patient()
        found = session.fhir("GET", f"Organization?identifier={identifier}", token=patient_token)
        organizations = [r for r in found.entries() if r.get("resourceType") == "Organization"]
        if len(organizations) != 1:
            raise Skipped("needs --grantee: the app's organisation is not found once")
        session.facts["grantee"] = f"Organization/{organizations[0]['id']}"
    return str(session.facts["grantee"])


def _secret(session: Session) -> dict[str, Any]:
    """An Observation of the client, written for this run, nobody granted yet."""
    if "secret" not in session.facts:
        token, patient = session.patient()
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": _CODE}]},
            "subject": {"reference": f"Patient/{patient}"},
            "valueQuantity": {"value": 61, "unit": "kg"},
            "identifier": [
                {"system": "https://eigendossier.nl/conformance/secret", "value": uuid.uuid4().hex}
            ],
        }
        answer = session.fhir("POST", "Observation", token=token, json_body=resource)
        expect(answer.status == 201, f"the client could not write an Observation ({answer.status})")
        session.facts["secret"] = answer.body
    found: dict[str, Any] = session.facts["secret"]
    return found


def _consent(patient: str, actor: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
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
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": actor},
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
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
        },
    }


def _app_reads(session: Session, path: str) -> int:
    return session.fhir("GET", path, token=session.backend_token()).status


def _app_total(session: Session, query: str) -> int:
    answer = session.fhir("GET", query, token=session.backend_token())
    expect(answer.status == 200, f"{query} answered {answer.status} to the app")
    return int(answer.body.get("total", len(answer.entries())))


@check(
    "consent-01",
    "Deny by default: nothing of a dossier without the client's consent",
    requirement="Nobody but the client sees their dossier unless a Consent of theirs permits",
    link=_DOCS,
    inputs="--patient-login, --client-id, --key, --grantee",
    asserts="the app reads the client's new Observation: 404; searches find 0 (total and "
    "_summary=count)",
)
def deny_by_default(session: Session) -> None:
    secret = _secret(session)
    grantee(session)
    expect(_app_reads(session, f"Observation/{secret['id']}") in (403, 404), "the app read it")
    _, patient = session.patient()
    expect(
        _app_total(session, f"Observation?subject=Patient/{patient}") == 0, "the search counts it"
    )
    expect(
        _app_total(session, f"Observation?subject=Patient/{patient}&_summary=count") == 0,
        "_summary=count counts it",
    )


@check(
    "consent-02",
    "The paths a leak would take stay closed",
    requirement="Counts, includes, chains, _has and history follow the consent like reads do",
    link=_DOCS,
    inputs="--patient-login, --client-id, --key, --grantee",
    asserts="without a grant: _has:Observation finds no Patient; a chain on the subject finds "
    "nothing; _revinclude brings no Observation; the Observation's history answers 404",
    needs=("consent-01",),
)
def leak_paths(session: Session) -> None:
    secret = _secret(session)
    _, patient = session.patient()
    expect(
        _app_total(session, f"Patient?_has:Observation:subject:code={_CODE}&_id={patient}") == 0,
        "_has reveals the client by their Observation",
    )
    expect(
        _app_total(session, f"Observation?subject:Patient._id={patient}&code={_CODE}") == 0,
        "a chain finds the Observation",
    )
    revinclude = session.fhir(
        "GET",
        f"Patient?_id={patient}&_revinclude=Observation:subject",
        token=session.backend_token(),
    )
    leaked = [r for r in revinclude.entries() if r.get("id") == secret["id"]]
    expect(not leaked, "_revinclude brings the Observation")
    expect(
        _app_reads(session, f"Observation/{secret['id']}/_history") in (403, 404),
        "the history of the Observation is readable",
    )


@check(
    "consent-03",
    "A grant opens exactly what it names",
    requirement="An active Consent naming the grantee permits the types it names",
    link=_DOCS,
    inputs="--patient-login, --client-id, --key, --grantee",
    asserts="the client writes a Consent permitting the grantee Observations: 201; the app "
    "then reads the Observation (200) and counts it, and still not the client's Patient, "
    "neither read nor by _include",
    needs=("consent-01",),
)
def grant(session: Session) -> None:
    token, patient = session.patient()
    answer = session.fhir(
        "POST", "Consent", token=token, json_body=_consent(patient, grantee(session))
    )
    expect(
        answer.status == 201, f"the client's Consent answered {answer.status}: {answer.text[:200]}"
    )
    session.facts["consent"] = answer.body
    secret = _secret(session)
    expect(_app_reads(session, f"Observation/{secret['id']}") == 200, "the grant does not open it")
    expect(
        _app_total(session, f"Observation?subject=Patient/{patient}&code={_CODE}") >= 1,
        "a search does not find it",
    )
    expect(_app_reads(session, f"Patient/{patient}") in (403, 404), "the Patient was not granted")
    included = session.fhir(
        "GET",
        f"Observation?subject=Patient/{patient}&code={_CODE}&_include=Observation:subject",
        token=session.backend_token(),
    )
    leaked = [r for r in included.entries() if r.get("resourceType") == "Patient"]
    expect(not leaked, "_include brings the Patient the grant does not name")


@check(
    "consent-04",
    "Withdrawing holds from the next request",
    requirement="Revocation works on the next request",
    link=_DOCS,
    inputs="the Consent of consent-03",
    asserts="the client sets it inactive; the app's next read answers 404, its search 0",
    needs=("consent-03",),
)
def withdraw(session: Session) -> None:
    token, patient = session.patient()
    consent = dict(session.facts["consent"])
    consent["status"] = "inactive"
    answer = session.fhir("PUT", f"Consent/{consent['id']}", token=token, json_body=consent)
    expect(answer.status == 200, f"withdrawing answered {answer.status}")
    secret = _secret(session)
    expect(_app_reads(session, f"Observation/{secret['id']}") in (403, 404), "still readable")
    expect(
        _app_total(session, f"Observation?subject=Patient/{patient}&code={_CODE}") == 0,
        "still found by a search",
    )


@check(
    "consent-05",
    "The client reads who looked: allowed and refused",
    requirement="Every access is logged (NEN 7513) and the client can read their log",
    link=_DOCS,
    inputs="the reads of consent-01 to consent-04",
    asserts="AuditEvent?patient= (the client's token) holds entries of the app's requests, "
    "with outcome 0 (allowed) and 4 (refused)",
    needs=("consent-04",),
)
def access_log(session: Session) -> None:
    token, patient = session.patient()
    answer = session.fhir(
        "GET", f"AuditEvent?patient=Patient/{patient}&_count=200&_sort=-date", token=token
    )
    expect(answer.status == 200, f"the client's log answered {answer.status}")
    secret = f"Observation/{_secret(session)['id']}"
    about = [
        e
        for e in answer.entries()
        if any((x.get("what") or {}).get("reference") == secret for x in e.get("entity", []))
    ]
    outcomes = {str(e.get("outcome")) for e in about}
    expect("0" in outcomes, "no allowed access to the Observation in the log")
    expect("4" in outcomes, "no refused access to the Observation in the log")


@check(
    "consent-06",
    "The access log is the client's, nobody else's",
    requirement="Others never read a client's access log, and nobody writes it",
    link=_DOCS,
    inputs="--client-id, --key, --patient-login",
    asserts="the app's AuditEvent search finds nothing of the client; the client's POST of an "
    "AuditEvent is refused",
    needs=("consent-01",),
)
def log_is_private(session: Session) -> None:
    token, patient = session.patient()
    answer = session.fhir(
        "GET", f"AuditEvent?patient=Patient/{patient}", token=session.backend_token()
    )
    expect(answer.status in (200, 403), f"the app's search answered {answer.status}")
    expect(not answer.entries() or answer.status == 403, "the app reads the client's log")
    event = {
        "resourceType": "AuditEvent",
        "type": {"code": "rest"},
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": True}],
        "source": {"observer": {"display": "x"}},
    }
    written = session.fhir("POST", "AuditEvent", token=token, json_body=event)
    expect(written.status in (403, 405), f"the client's AuditEvent was answered {written.status}")
