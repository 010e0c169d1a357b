"""``rest``: the FHIR REST API, with the client's own token on their own dossier.

Each run writes Observations of its own (an identifier unique to the run) into the dossier
of the client who logged in (``--patient-login``), and deletes them again where a check
deletes; every answer is judged by HL7's JSON schema and fhir.resources.
"""

from __future__ import annotations

import uuid
from typing import Any

from conformance.kit.model import FHIR, Failed, check, expect
from conformance.kit.session import Answer, Session
from mappings.core.errors import Invalid
from mappings.core.xml import parse_hardened

#: the checks join the catalogue when this module is imported; nothing is imported from it
__all__: list[str] = []

_SYSTEM = "https://eigendossier.nl/conformance/run"
_XML = "{http://hl7.org/fhir}"


def _observation(session: Session, value: int, **extra: Any) -> dict[str, Any]:
    _, patient = session.patient()
    run = session.facts.setdefault("run", uuid.uuid4().hex[:12])
    return {
        "resourceType": "Observation",
        "identifier": [{"system": _SYSTEM, "value": f"{run}-{value}"}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Pols"},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2026-01-15T10:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        **extra,
    }


def _outcome(answer: Answer, status: tuple[int, ...], what: str) -> None:
    expect(answer.status in status, f"{what}: answered {answer.status}, not {status}")
    expect(
        answer.resource_type == "OperationOutcome",
        f"{what}: the answer is a {answer.resource_type}, not an OperationOutcome",
    )


def created(session: Session) -> dict[str, Any]:
    """The Observation rest-01 created (created again if that check was not run)."""
    if "created" not in session.facts:
        token, _ = session.patient()
        answer = session.fhir(
            "POST", "Observation", token=token, json_body=_observation(session, 72)
        )
        expect(answer.status == 201, f"POST Observation answered {answer.status}")
        session.facts["created"] = answer.body
        session.facts["location"] = answer.headers.get("location", "")
        session.facts["etag"] = answer.headers.get("etag", "")
    found: dict[str, Any] = session.facts["created"]
    return found


@check(
    "rest-01",
    "create",
    requirement="POST [base]/[type] creates a resource: 201, Location, ETag, meta.versionId",
    link=f"{FHIR}/http.html#create",
    inputs="--patient-login",
    asserts='201; Location names the new id and version; ETag W/"1"; the body is valid R4',
)
def create(session: Session) -> None:
    body = created(session)
    session.valid(body, "The created Observation")
    location = str(session.facts["location"])
    expect(f"Observation/{body.get('id')}/_history/" in location, f"Location is {location!r}")
    expect(session.facts["etag"] == 'W/"1"', f"ETag is {session.facts['etag']!r}")
    expect((body.get("meta") or {}).get("versionId") == "1", "meta.versionId is not 1")


@check(
    "rest-02",
    "read",
    requirement="GET [base]/[type]/[id] returns the current version with its ETag",
    link=f"{FHIR}/http.html#read",
    inputs="the Observation of rest-01",
    asserts="200, the same content, ETag of its version, Last-Modified",
    needs=("rest-01",),
)
def read(session: Session) -> None:
    token, _ = session.patient()
    body = created(session)
    answer = session.fhir("GET", f"Observation/{body['id']}", token=token)
    expect(answer.status == 200, f"read answered {answer.status}")
    session.valid(answer.body, "The Observation read")
    expect(answer.body.get("valueQuantity") == body.get("valueQuantity"), "the value differs")
    expect(answer.headers.get("etag") == 'W/"1"', f"ETag is {answer.headers.get('etag')!r}")
    expect(answer.headers.get("last-modified"), "no Last-Modified")


@check(
    "rest-03",
    "update, vread and history",
    requirement="PUT makes a new version; vread reads any version; history lists them",
    link=f"{FHIR}/http.html#update",
    inputs="the Observation of rest-01",
    asserts="PUT answers 200 with version 2; vread of version 1 has the old value; "
    "_history is a history Bundle, newest first, with both",
    needs=("rest-01",),
)
def update_vread_history(session: Session) -> None:
    token, _ = session.patient()
    body = created(session)
    ident = body["id"]
    changed = {
        **_observation(session, 72),
        "id": ident,
        "valueQuantity": {**body["valueQuantity"], "value": 80},
    }
    answer = session.fhir("PUT", f"Observation/{ident}", token=token, json_body=changed)
    expect(answer.status == 200, f"update answered {answer.status}")
    expect((answer.body.get("meta") or {}).get("versionId") == "2", "the update is not version 2")
    old = session.fhir("GET", f"Observation/{ident}/_history/1", token=token)
    expect(old.status == 200, f"vread of version 1 answered {old.status}")
    expect(old.body["valueQuantity"]["value"] == 72, "version 1 does not hold the old value")
    history = session.fhir("GET", f"Observation/{ident}/_history", token=token)
    expect(history.status == 200, f"history answered {history.status}")
    session.valid(history.body, "The history Bundle")
    expect(history.body.get("type") == "history", "the Bundle is not of type history")
    versions = [(e.get("meta") or {}).get("versionId") for e in history.entries()]
    expect(versions == ["2", "1"], f"history lists versions {versions}")
    session.facts["created"] = answer.body


@check(
    "rest-04",
    "If-Match with a stale version answers 412",
    requirement="Servers use optimistic locking with ETag / If-Match",
    link=f"{FHIR}/http.html#concurrency",
    inputs="the Observation of rest-01 (updated by rest-03)",
    asserts='PUT with If-Match W/"1" when the current version is later answers 412 with an '
    "OperationOutcome, and nothing changes",
    needs=("rest-03",),
)
def stale_if_match(session: Session) -> None:
    token, _ = session.patient()
    body = created(session)
    stale = session.fhir(
        "PUT",
        f"Observation/{body['id']}",
        token=token,
        json_body={**body, "valueQuantity": {**body["valueQuantity"], "value": 1}},
        headers={"If-Match": 'W/"1"'},
    )
    _outcome(stale, (412,), "a stale If-Match")
    now = session.fhir("GET", f"Observation/{body['id']}", token=token)
    expect(now.body["valueQuantity"]["value"] != 1, "the stale update was written")


@check(
    "rest-05",
    "Conditional create does not duplicate",
    requirement="If-None-Exist: a match means no new resource",
    link=f"{FHIR}/http.html#ccreate",
    inputs="--patient-login",
    asserts="the first POST answers 201, the second with the same If-None-Exist 200 and the "
    "same id",
)
def conditional_create(session: Session) -> None:
    token, _ = session.patient()
    resource = _observation(session, 61)
    condition = {"If-None-Exist": f"identifier={_SYSTEM}|{resource['identifier'][0]['value']}"}
    first = session.fhir("POST", "Observation", token=token, json_body=resource, headers=condition)
    expect(first.status == 201, f"the first conditional create answered {first.status}")
    second = session.fhir("POST", "Observation", token=token, json_body=resource, headers=condition)
    expect(second.status == 200, f"the second conditional create answered {second.status}")
    expect(second.body.get("id") == first.body.get("id"), "a second resource was made")


@check(
    "rest-06",
    "Conditional update",
    requirement="PUT [type]?[search] updates the one match, or creates when there is none",
    link=f"{FHIR}/http.html#cond-update",
    inputs="--patient-login",
    asserts="the first conditional PUT creates (201), the second updates the same id (200)",
)
def conditional_update(session: Session) -> None:
    token, _ = session.patient()
    resource = _observation(session, 62)
    url = f"Observation?identifier={_SYSTEM}|{resource['identifier'][0]['value']}"
    first = session.fhir("PUT", url, token=token, json_body=resource)
    expect(first.status == 201, f"the first conditional update answered {first.status}")
    second = session.fhir("PUT", url, token=token, json_body={**resource, "status": "amended"})
    expect(second.status == 200, f"the second conditional update answered {second.status}")
    expect(second.body.get("id") == first.body.get("id"), "it did not update the match")


@check(
    "rest-07",
    "delete",
    requirement="DELETE removes the resource; a read then answers 410 Gone",
    link=f"{FHIR}/http.html#delete",
    inputs="--patient-login",
    asserts="DELETE answers 200 or 204; GET answers 410",
)
def delete(session: Session) -> None:
    token, _ = session.patient()
    made = session.fhir("POST", "Observation", token=token, json_body=_observation(session, 63))
    expect(made.status == 201, f"POST answered {made.status}")
    gone = session.request("DELETE", f"Observation/{made.body['id']}", token=token)
    expect(gone.status in (200, 204), f"DELETE answered {gone.status}")
    after = session.fhir("GET", f"Observation/{made.body['id']}", token=token)
    expect(after.status == 410, f"a read after delete answered {after.status}")


@check(
    "rest-08",
    "A transaction is all or nothing",
    requirement="A transaction Bundle succeeds or fails as a whole",
    link=f"{FHIR}/http.html#trules",
    inputs="--patient-login",
    asserts="a transaction of a good Observation and an invalid one answers 4xx with an "
    "OperationOutcome, and the good one is not stored; a good transaction answers a "
    "transaction-response",
)
def transaction(session: Session) -> None:
    token, _ = session.patient()
    good = _observation(session, 64)
    bad = {**_observation(session, 65), "status": "not-a-status"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Observation"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    failed = session.fhir("POST", "", token=token, json_body=bundle)
    _outcome(failed, (400, 409, 412, 422), "a transaction with an invalid entry")
    search = session.fhir(
        "GET", f"Observation?identifier={_SYSTEM}|{good['identifier'][0]['value']}", token=token
    )
    expect(not search.entries(), "the good entry of a failed transaction was stored")
    bundle["entry"] = bundle["entry"][:1]
    done = session.fhir("POST", "", token=token, json_body=bundle)
    expect(done.status == 200, f"a good transaction answered {done.status}")
    expect(done.body.get("type") == "transaction-response", "not a transaction-response")


def _ids(answer: Answer) -> set[str]:
    return {str(r.get("id")) for r in answer.entries() if r.get("resourceType") == "Observation"}


@check(
    "rest-09",
    "Search parameter types",
    requirement="Servers search by token, reference, date and quantity parameters",
    link=f"{FHIR}/search.html#ptypes",
    inputs="the Observation of rest-01",
    asserts="it is found by identifier (token), subject (reference), date=ge2026-01 (date) "
    "and value-quantity=ge70 (quantity); not by date=lt2020 or value-quantity=lt10",
    needs=("rest-01",),
)
def search_types(session: Session) -> None:
    token, patient = session.patient()
    ident = str(created(session)["id"])
    value = created(session)["identifier"][0]["value"]
    hits = {
        "token": f"identifier={_SYSTEM}|{value}",
        "reference": f"subject=Patient/{patient}&identifier={_SYSTEM}|{value}",
        "date": f"date=ge2026-01&identifier={_SYSTEM}|{value}",
        "quantity": f"value-quantity=ge70&identifier={_SYSTEM}|{value}",
    }
    for kind, query in hits.items():
        answer = session.fhir("GET", f"Observation?{query}", token=token)
        expect(answer.status == 200, f"the {kind} search answered {answer.status}")
        session.valid(answer.body, f"The searchset of the {kind} search")
        expect(ident in _ids(answer), f"the {kind} search does not find it")
    for query in ("date=lt2020", "value-quantity=lt10"):
        answer = session.fhir(
            "GET", f"Observation?{query}&identifier={_SYSTEM}|{value}", token=token
        )
        expect(ident not in _ids(answer), f"{query} finds it")


@check(
    "rest-10",
    "Search modifiers",
    requirement="Servers support the :missing and :not modifiers",
    link=f"{FHIR}/search.html#modifiers",
    inputs="the Observation of rest-01",
    asserts="value-quantity:missing=false finds it and :missing=true does not; "
    "status:not=cancelled finds it, status:not=final does not",
    needs=("rest-01",),
)
def search_modifiers(session: Session) -> None:
    token, _ = session.patient()
    ident = str(created(session)["id"])
    value = created(session)["identifier"][0]["value"]
    mine = f"identifier={_SYSTEM}|{value}"
    cases = {
        f"{mine}&value-quantity:missing=false": True,
        f"{mine}&value-quantity:missing=true": False,
        f"{mine}&status:not=final": created(session).get("status") != "final",
        f"{mine}&status:not=cancelled": True,
    }
    for query, found in cases.items():
        answer = session.fhir("GET", f"Observation?{query}", token=token)
        expect(answer.status == 200, f"{query} answered {answer.status}")
        expect((ident in _ids(answer)) is found, f"{query} {'misses' if found else 'finds'} it")


@check(
    "rest-11",
    "Paging follows next links to every match, the total exact",
    requirement="Searchset Bundles page with next links; total counts every match",
    link=f"{FHIR}/http.html#paging",
    inputs="the client's Observations",
    asserts="_count=1 pages, following next links, meet each match once; their number is "
    "the Bundle's total",
    needs=("rest-01",),
)
def paging(session: Session) -> None:
    token, patient = session.patient()
    answer = session.fhir("GET", f"Observation?subject=Patient/{patient}&_count=1", token=token)
    total = answer.body.get("total")
    expect(isinstance(total, int) and total >= 1, f"total is {total!r}")
    seen: list[str] = []
    for _ in range(200):
        seen += sorted(_ids(answer))
        links = {
            str(link.get("relation")): str(link.get("url")) for link in answer.body.get("link", [])
        }
        if "next" not in links:
            break
        answer = session.fhir("GET", links["next"], token=token)
    expect(len(seen) == len(set(seen)), "a match came twice")
    expect(len(seen) == total, f"the pages hold {len(seen)}, total says {total}")


@check(
    "rest-12",
    "_include and _revinclude",
    requirement="Servers return included resources in the same Bundle, search mode include",
    link=f"{FHIR}/search.html#include",
    inputs="the Observation of rest-01",
    asserts="Observation?_include=Observation:subject brings the Patient (mode include); "
    "Patient?_revinclude=Observation:subject brings the Observation",
    needs=("rest-01",),
)
def includes(session: Session) -> None:
    token, patient = session.patient()
    value = created(session)["identifier"][0]["value"]
    answer = session.fhir(
        "GET", f"Observation?identifier={_SYSTEM}|{value}&_include=Observation:subject", token=token
    )
    included = [
        e for e in answer.body.get("entry", []) if (e.get("search") or {}).get("mode") == "include"
    ]
    expect(any(e["resource"].get("id") == patient for e in included), "the subject is not included")
    rev = session.fhir("GET", f"Patient?_id={patient}&_revinclude=Observation:subject", token=token)
    expect(str(created(session)["id"]) in _ids(rev), "the Observation is not revincluded")


@check(
    "rest-13",
    "Errors are OperationOutcomes with the right status",
    requirement="Failures answer an OperationOutcome with a fitting HTTP status",
    link=f"{FHIR}/http.html#Status-Codes",
    inputs="--patient-login",
    asserts="an unknown type 404; a body that is not JSON 400; an invalid Observation 400 or "
    "422; an unknown search parameter 400; a missing resource 404 — each an OperationOutcome",
)
def errors(session: Session) -> None:
    token, _ = session.patient()
    _outcome(session.fhir("GET", "NoSuchType/1", token=token), (404,), "an unknown type")
    _outcome(
        session.fhir(
            "POST",
            "Observation",
            token=token,
            content=b"{not json",
            headers={"Content-Type": "application/fhir+json"},
        ),
        (400,),
        "a body that is not JSON",
    )
    bad = {**_observation(session, 66), "valueQuantity": "seventy"}
    _outcome(
        session.fhir("POST", "Observation", token=token, json_body=bad),
        (400, 422),
        "an invalid Observation",
    )
    _outcome(
        session.fhir(
            "GET",
            "Observation?no-such-parameter=1",
            token=token,
            headers={"Prefer": "handling=strict"},
        ),
        (400,),
        "an unknown search parameter (strict)",
    )
    _outcome(
        session.fhir("GET", f"Observation/{uuid.uuid4()}", token=token), (404,), "a missing id"
    )


@check(
    "rest-14",
    "XML and JSON agree",
    requirement="A resource in XML is the same resource as in JSON",
    link=f"{FHIR}/formats.html",
    inputs="the Observation of rest-01",
    asserts="read with Accept application/fhir+xml: the same id, status, code and value",
    needs=("rest-01",),
)
def xml_json(session: Session) -> None:
    token, _ = session.patient()
    body = created(session)
    answer = session.request(
        "GET", f"Observation/{body['id']}", token=token, headers={"Accept": "application/fhir+xml"}
    )
    expect(answer.status == 200, f"the XML read answered {answer.status}")
    expect("xml" in answer.headers.get("content-type", ""), "the answer is not XML")
    try:
        root = parse_hardened(answer.text.encode())
    except Invalid as error:
        raise Failed(f"the XML is refused: {error.diagnostics}") from None

    def value(path: str) -> str | None:
        found = root.find(path)
        return found.get("value") if found is not None else None

    pairs = {
        "id": (value(f"{_XML}id"), body.get("id")),
        "status": (value(f"{_XML}status"), body.get("status")),
        "code": (value(f"{_XML}code/{_XML}coding/{_XML}code"), body["code"]["coding"][0]["code"]),
        "value": (value(f"{_XML}valueQuantity/{_XML}value"), str(body["valueQuantity"]["value"])),
    }
    for name, (xml, json_value) in pairs.items():
        expect(xml == json_value, f"{name}: XML {xml!r}, JSON {json_value!r}")
