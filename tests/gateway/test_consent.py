"""The client's consent decides, in the data path: a matrix, the leak suite, the access log.

A GP practice (a backend app bound to its AGB code), a district nurse (a practitioner in the
client's care team) and the client (Anna) drive everything over real HTTP with real tokens.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gateway.app import build_services
from gateway.http.app import build_http_app
from gateway.security import build_security
from gateway.settings import Settings
from gateway.store.access import AccessFilter
from gateway.store.lookups import Lookups
from gateway.store.repository import Session, Store
from mappings.core.clock import Clock
from tests.conftest import _free_port, running
from tests.consents import ACCESS, CORRECT, PSY, actor, classes, privacy_consent
from tests.smart import account, backend_app, backend_token, bearer, login, public_app

AGB = "http://fhir.nl/fhir/NamingSystem/agb"


def _obs(oid: str, patient: str, *, label: bool = False, code: str = "zrm") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://example.org/codes", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if label:
        resource["meta"] = {"security": [PSY]}
    return resource


@pytest.fixture()
def world(secure: dict[str, Any], client: httpx.Client) -> dict[str, Any]:
    """Two dossiers, a GP practice with a backend app, a nurse in Anna's care team."""
    resources = [
        {"resourceType": "Patient", "id": "anna", "name": [{"family": "Jansen"}]},
        {"resourceType": "Patient", "id": "bert", "name": [{"family": "Bakker"}]},
        {
            "resourceType": "Organization",
            "id": "gp",
            "name": "Huisartsen Zuid",
            "identifier": [{"system": AGB, "value": "01234567"}],
        },
        {"resourceType": "Practitioner", "id": "nurse", "name": [{"family": "Visser"}]},
        {
            "resourceType": "CareTeam",
            "id": "team",
            "subject": {"reference": "Patient/anna"},
            "participant": [{"member": {"reference": "Practitioner/nurse"}}],
        },
        {
            "resourceType": "CarePlan",
            "id": "plan-anna",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/anna"},
        },
        {
            "resourceType": "CarePlan",
            "id": "plan-bert",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/bert"},
        },
        _obs("obs-anna", "anna"),
        _obs("obs-anna-psy", "anna", label=True, code="psy"),
        _obs("obs-bert", "bert"),
    ]
    for resource in resources:
        url = f"{resource['resourceType']}/{resource['id']}"
        assert client.put(url, json=resource).status_code == 201, url
    security, base = secure["security"], secure["base"]
    account(security, "anna", "patient", "Patient/anna")
    account(security, "nurse", "practitioner", "Practitioner/nurse")
    anna = login(base, security, "anna")["access_token"]
    gp_id, gp_key = backend_app(security, organization=f"{AGB}|01234567")
    gp = backend_token(base, gp_id, gp_key, "system/*.rs").json()["access_token"]
    nurse_scope = "openid fhirUser offline_access user/*.cruds"
    nurse_app = public_app(security, scope=nurse_scope)
    nurse = login(base, security, "nurse", scope=nurse_scope, client_id=nurse_app)
    return {
        "base": base,
        "anna": anna,
        "gp": gp,
        "nurse": nurse["access_token"],
        "nurse_refresh": nurse["refresh_token"],
        "nurse_client": nurse["client_id"],
        "security": security,
        "gp_app": (gp_id, gp_key),
    }


def _get(world: dict[str, Any], who: str, path: str) -> httpx.Response:
    return httpx.get(f"{world['base']}/{path}", headers=bearer(world[who]))


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
    )


def _grant(world: dict[str, Any], consent: dict[str, Any]) -> httpx.Response:
    return httpx.put(
        f"{world['base']}/Consent/{consent['id']}", json=consent, headers=bearer(world["anna"])
    )


GP_PLAN_AND_OBS = {
    "type": "permit",
    "actor": [actor("Organization/gp")],
    "action": [ACCESS],
    "class": classes("Patient", "CarePlan", "Observation"),
    "provision": [{"type": "deny", "securityLabel": [PSY]}],
}


def test_nobody_sees_anything_without_a_consent(world: dict[str, Any]) -> None:
    for who in ("gp", "nurse"):
        assert _get(world, who, "CarePlan/plan-anna").status_code == 404
        found = _get(world, who, "Observation?_total=accurate")
        assert found.json()["total"] == 0 and _ids(found) == []


def test_a_grant_opens_exactly_what_it_names_and_the_nested_deny_wins(
    world: dict[str, Any],
) -> None:
    assert _grant(world, privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS)).status_code == 201
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 200
    assert _get(world, "gp", "CarePlan/plan-bert").status_code == 404
    assert _ids(_get(world, "gp", "CarePlan")) == ["CarePlan/plan-anna"]
    assert _ids(_get(world, "gp", "Observation")) == ["Observation/obs-anna"]
    assert _get(world, "gp", "Observation/obs-anna-psy").status_code == 404
    assert _get(world, "gp", "CareTeam/team").status_code == 404  # class not granted
    assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 404  # other actor


def test_leak_suite_totals_paging_includes_chains_has_history(world: dict[str, Any]) -> None:
    _grant(world, privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS))
    count = _get(world, "gp", "Observation?_summary=count").json()
    assert count["total"] == 1
    page = _get(world, "gp", "Observation?_count=1&_total=accurate").json()
    assert page["total"] == 1 and not any(x["relation"] == "next" for x in page["link"])
    included = _get(world, "gp", "Patient?_revinclude=Observation:subject")
    assert _ids(included) == ["Observation/obs-anna", "Patient/anna"]
    chained = _get(world, "gp", "Observation?subject.name=Bakker")
    assert _ids(chained) == []
    has = _get(world, "gp", "Patient?_has:Observation:subject:code=psy")
    assert _ids(has) == []
    has_bert = _get(world, "gp", "Patient?_has:Observation:subject:code=zrm")
    assert _ids(has_bert) == ["Patient/anna"]
    include = _get(world, "gp", "Observation?_include=Observation:subject")
    assert _ids(include) == ["Observation/obs-anna", "Patient/anna"]
    assert _get(world, "gp", "Observation/obs-anna-psy/_history").status_code == 404
    history = _get(world, "gp", "Observation/_history")
    assert [e["resource"]["id"] for e in history.json().get("entry", [])] == ["obs-anna"]
    system = _get(world, "gp", "?_count=50")
    assert _ids(system) == [
        "CarePlan/plan-anna",
        "Observation/obs-anna",
        "Organization/gp",  # the directory is in nobody's dossier
        "Patient/anna",
        "Practitioner/nurse",
    ]
    assert _get(world, "gp", "AuditEvent").json().get("total", 0) == 0


def test_revocation_holds_from_the_very_next_request(world: dict[str, Any]) -> None:
    consent = privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS)
    _grant(world, consent)
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 200
    assert _grant(world, {**consent, "status": "inactive"}).status_code == 200
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 404


def test_a_period_that_ended_grants_nothing(world: dict[str, Any]) -> None:
    provision = {**GP_PLAN_AND_OBS, "period": {"start": "2020-01-01", "end": "2021-01-01"}}
    _grant(world, privacy_consent("old", "anna", provision))
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 404


def test_data_grants_name_single_resources(world: dict[str, Any]) -> None:
    provision = {
        "type": "permit",
        "actor": [actor("Organization/gp")],
        "data": [{"meaning": "instance", "reference": {"reference": "CarePlan/plan-anna"}}],
    }
    _grant(world, privacy_consent("one-plan", "anna", provision))
    assert _ids(_get(world, "gp", "CarePlan")) == ["CarePlan/plan-anna"]
    assert _ids(_get(world, "gp", "Observation")) == []


def test_writes_need_a_write_grant_and_a_care_team_grant_reaches_its_members(
    world: dict[str, Any],
) -> None:
    new = _obs("by-nurse", "anna")
    url = f"{world['base']}/Observation/by-nurse"
    read_only = {
        "type": "permit",
        "actor": [actor("CareTeam/team")],
        "action": [ACCESS],
    }
    _grant(world, privacy_consent("team-read", "anna", read_only))
    assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 200
    refused = httpx.put(url, json=new, headers=bearer(world["nurse"]))
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
    assert httpx.get(url, headers=bearer(world["anna"])).status_code == 404  # nothing kept
    writer = {**read_only, "action": [ACCESS, CORRECT]}
    _grant(world, privacy_consent("team-read", "anna", writer))
    assert httpx.put(url, json=new, headers=bearer(world["nurse"])).status_code == 201
    elsewhere = httpx.put(
        f"{world['base']}/Observation/for-bert",
        json=_obs("for-bert", "bert"),
        headers=bearer(world["nurse"]),
    )
    assert elsewhere.status_code == 403
    log = _get(world, "anna", "AuditEvent?patient=anna&_count=200").json()
    written = [e["resource"] for e in log.get("entry", []) if e["resource"]["action"] in ("C", "U")]
    assert any(
        x.get("what", {}).get("reference") == "Observation/by-nurse"
        for e in written
        for x in e["entity"]
    ), [e["entity"] for e in written]


def test_a_care_team_records_a_consent_as_proposed_and_only_the_client_activates(
    world: dict[str, Any],
) -> None:
    _grant(
        world,
        privacy_consent(
            "team",
            "anna",
            {
                "type": "permit",
                "actor": [actor("CareTeam/team")],
                "action": [ACCESS, CORRECT],
            },
        ),
    )
    told = privacy_consent("told-in-person", "anna", GP_PLAN_AND_OBS)
    url = f"{world['base']}/Consent/told-in-person"
    assert httpx.put(url, json=told, headers=bearer(world["nurse"])).status_code == 403
    proposed = {**told, "status": "proposed"}
    assert httpx.put(url, json=proposed, headers=bearer(world["nurse"])).status_code == 201
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 404
    current = httpx.get(url, headers=bearer(world["anna"])).json()
    assert (
        httpx.put(
            url, json={**current, "status": "active"}, headers=bearer(world["anna"])
        ).status_code
        == 200
    )
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 200


def test_consents_outside_the_subset_are_refused(world: dict[str, Any]) -> None:
    coded = {**GP_PLAN_AND_OBS, "code": [{"coding": [{"code": "x"}]}]}
    response = _grant(world, privacy_consent("coded", "anna", coded))
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "not-supported"
    no_actor = {"type": "permit", "action": [ACCESS]}
    assert _grant(world, privacy_consent("anyone", "anna", no_actor)).status_code == 422


def test_the_client_reads_who_looked_and_nobody_rewrites_the_log(world: dict[str, Any]) -> None:
    _grant(world, privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS))
    _get(world, "gp", "CarePlan/plan-anna")
    _get(world, "gp", "Observation/obs-anna-psy")
    log = _get(world, "anna", "AuditEvent?patient=anna&_count=100").json()
    events = [e["resource"] for e in log["entry"]]
    read = [
        e
        for e in events
        if e["action"] == "R"
        and e["outcome"] == "0"
        and any(
            x.get("what", {}).get("reference") == "CarePlan/plan-anna" for x in e.get("entity", [])
        )
    ]
    assert read, "the GP's read is in Anna's log"
    agents = read[0]["agent"]
    assert agents[0]["policy"] == [f"{world['base']}/Consent/gp-grant"]
    assert agents[2]["who"]["identifier"] == {"system": AGB, "value": "01234567"}
    assert agents[0]["network"]["address"] == "127.0.0.1"
    refused = [e for e in events if e["outcome"] == "4"]
    assert any(
        x.get("what", {}).get("reference") == "Observation/obs-anna-psy"
        for e in refused
        for x in e.get("entity", [])
    )
    assert all("Bakker" not in str(e) for e in events)
    one = events[0]
    assert (
        httpx.put(
            f"{world['base']}/AuditEvent/{one['id']}", json=one, headers=bearer(world["anna"])
        ).status_code
        == 405
    )
    deleted = httpx.delete(f"{world['base']}/AuditEvent/{one['id']}", headers=bearer(world["anna"]))
    assert deleted.status_code == 405 and deleted.headers["allow"] == "GET, HEAD"
    assert deleted.json()["resourceType"] == "OperationOutcome"
    assert _get(world, "gp", "AuditEvent?patient=anna").json()["total"] == 0


def test_each_entry_names_the_consents_of_its_own_patient(
    world: dict[str, Any], client: httpx.Client
) -> None:
    """A caller granted by several clients: the entry of each read names the Consents of
    the client whose record it read, and no other's (the grants are kept by patient with
    the caller's grants, ADR 0051)."""
    _grant(world, privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS))
    _grant(world, privacy_consent("gp-grant-again", "anna", GP_PLAN_AND_OBS))
    bert = privacy_consent("bert-gp", "bert", GP_PLAN_AND_OBS)
    assert client.put("Consent/bert-gp", json=bert).status_code == 201
    for plan in ("plan-anna", "plan-bert"):
        assert _get(world, "gp", f"CarePlan/{plan}").status_code == 200
    base = world["base"]
    expected = {
        "plan-anna": [f"{base}/Consent/gp-grant", f"{base}/Consent/gp-grant-again"],
        "plan-bert": [f"{base}/Consent/bert-gp"],
    }
    for plan, consents in expected.items():
        log = client.get(f"AuditEvent?entity=CarePlan/{plan}&action=R").json()
        entries = [e["resource"] for e in log.get("entry", [])]
        assert len(entries) == 1, plan
        assert sorted(entries[0]["agent"][0]["policy"]) == consents


def test_explain_names_the_consent_and_provision(world: dict[str, Any]) -> None:
    _grant(world, privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS))
    query = "Consent/$explain?actor=Organization/gp&action=read&resource="
    allowed = _get(world, "anna", query + "Observation/obs-anna").json()["parameter"]
    values = {
        p["name"]: p.get("valueCode") or p.get("valueString") or p.get("valueReference")
        for p in allowed
    }
    assert values["decision"] == "permit"
    assert values["consent"] == {"reference": "Consent/gp-grant"}
    denied = _get(world, "anna", query + "Observation/obs-anna-psy").json()["parameter"]
    values = {p["name"]: p.get("valueCode") or p.get("valueString") for p in denied}
    assert values["decision"] == "deny"
    assert values["provision"] == "Consent.provision.provision[0]"
    assert _get(world, "anna", query + "Observation/obs-bert").status_code == 404
    assert _get(world, "gp", query + "Observation/obs-anna").status_code == 404
    # the Consent's own action codes: access reads, correct writes
    for code, decision in (("access", "permit"), ("disclose", "permit"), ("correct", "deny")):
        url = f"Consent/$explain?actor=Organization/gp&action={code}&resource=CarePlan/plan-anna"
        found = _get(world, "anna", url).json()["parameter"]
        assert next(p["valueCode"] for p in found if p["name"] == "decision") == decision, code
    unknown = _get(
        world, "anna", query.replace("action=read", "action=peek") + "CarePlan/plan-anna"
    )
    assert unknown.status_code == 400


def test_the_capability_statement_lists_our_operations(world: dict[str, Any]) -> None:
    statement = _get(world, "anna", "metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    operations = {
        t: {o["name"]: o["definition"] for o in resources[t]["operation"]}
        for t in ("Patient", "Consent", "Observation")
    }
    base = "https://eigendossier.nl/fhir/OperationDefinition/"
    assert operations["Patient"]["break-the-glass"] == base + "break-the-glass"
    assert operations["Patient"]["zrm-progress"] == base + "zrm-progress"
    assert operations["Consent"]["explain"] == base + "explain"
    assert set(operations["Observation"]) == {"validate"}


def test_break_the_glass_is_time_boxed_logged_and_shown_to_the_client(
    world: dict[str, Any],
) -> None:
    url = f"{world['base']}/Patient/anna/$break-the-glass"
    reason = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": "Unconscious at home visit"}],
    }
    assert httpx.post(url, json=reason, headers=bearer(world["gp"])).status_code == 403
    assert (
        httpx.post(
            url, json={"resourceType": "Parameters"}, headers=bearer(world["nurse"])
        ).status_code
        == 400
    )
    opened = httpx.post(url, json=reason, headers=bearer(world["nurse"]))
    assert opened.status_code == 201, opened.text
    assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 200
    consents = _get(world, "anna", "Consent?patient=anna").json()["entry"]
    glass = [
        c["resource"] for c in consents if c["resource"]["policyRule"]["coding"][0]["code"] == "BTG"
    ]
    assert glass and glass[0]["provision"]["period"]["end"]
    log = _get(world, "anna", "AuditEvent?patient=anna&_count=100").json()["entry"]
    flagged = [
        e["resource"]
        for e in log
        if any(
            c["code"] == "BTG" for p in e["resource"].get("purposeOfEvent", []) for c in p["coding"]
        )
    ]
    assert any(e["action"] == "R" for e in flagged)
    assert all(e["purposeOfEvent"][0]["text"] == "Unconscious at home visit" for e in flagged)


def test_a_practitioners_refresh_works_while_a_grant_holds_and_stops_after(
    world: dict[str, Any],
) -> None:
    origin = world["base"].rsplit("/fhir", 1)[0]

    def refresh(token: str) -> httpx.Response:
        form = {
            "grant_type": "refresh_token",
            "client_id": world["nurse_client"],
            "refresh_token": token,
        }
        return httpx.post(f"{origin}/oauth/token", data=form)

    grant = privacy_consent("team", "anna", {"type": "permit", "actor": [actor("CareTeam/team")]})
    _grant(world, grant)
    renewed = refresh(world["nurse_refresh"])
    assert renewed.status_code == 200, renewed.text
    _grant(world, {**grant, "status": "inactive"})
    ended = refresh(renewed.json()["refresh_token"])
    assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant"


# -- what a gateway process keeps of the Consents (GrantCache, per access epoch) -----------


class _MovableClock:
    def __init__(self) -> None:
        self.ahead = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.ahead


@contextmanager
def _another_gateway(database_url: str, clock: Clock | None = None) -> Iterator[str]:
    """A second gateway process over the same database, as ``--workers`` or more machines
    run it; its FHIR base."""
    settings = Settings(database_url=database_url, port=_free_port())
    services = build_services(settings, clock=clock, migrate=False)
    security = build_security(services)
    services = dataclasses.replace(services, oauth_base=security.server.oauth_base)
    try:
        with running(build_http_app(services, settings, security), settings.port):
            yield settings.public_base_url
    finally:
        services.store.dispose()


def _gp_at(world: dict[str, Any], base: str) -> dict[str, str]:
    client_id, key = world["gp_app"]
    token = backend_token(base, client_id, key, "system/*.rs")
    assert token.status_code == 200, token.text
    return bearer(token.json()["access_token"])


def test_a_revocation_through_one_gateway_holds_at_another_on_the_next_request(
    world: dict[str, Any], database_url: str
) -> None:
    consent = privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS)
    with _another_gateway(database_url) as other:
        gp, plan = _gp_at(world, other), f"{other}/CarePlan/plan-anna"
        assert httpx.get(plan, headers=gp).status_code == 404  # nothing granted, and kept so
        assert _grant(world, consent).status_code == 201  # through the first gateway
        for _ in range(3):  # derived once, then served from what the other gateway keeps
            assert httpx.get(plan, headers=gp).status_code == 200
        assert _grant(world, {**consent, "status": "inactive"}).status_code == 200
        assert httpx.get(plan, headers=gp).status_code == 404
        assert _grant(world, consent).status_code == 200
        assert httpx.get(plan, headers=gp).status_code == 200


def test_a_revocation_through_one_gateway_holds_for_a_search_at_another_on_the_next_request(
    world: dict[str, Any], database_url: str
) -> None:
    """The other gateway searches under the last access epoch it saw, unread (on
    PostgreSQL its page's one statement reads the epoch beside it, ADR 0044): a revocation
    committed through the first gateway moved the epoch, so the search runs again under
    the new one, and finds nothing."""
    consent = privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS)
    assert _grant(world, consent).status_code == 201
    with _another_gateway(database_url) as other:
        gp, search = _gp_at(world, other), f"{other}/CarePlan?subject=Patient/anna"

        def found() -> int:
            answer = httpx.get(search, headers=gp)
            assert answer.status_code == 200, answer.text
            return int(answer.json()["total"])

        assert [found() for _ in range(3)] == [1, 1, 1]  # the epoch seen, the grants kept
        assert _grant(world, {**consent, "status": "inactive"}).status_code == 200
        assert found() == 0
        assert _grant(world, consent).status_code == 200
        assert found() == 1


def test_leaving_the_care_team_ends_its_grant_on_the_next_request(
    world: dict[str, Any], client: httpx.Client
) -> None:
    team_grant = {"type": "permit", "actor": [actor("CareTeam/team")]}
    _grant(world, privacy_consent("team", "anna", team_grant))
    for _ in range(2):
        assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 200
    team = client.get("CareTeam/team").json()
    without = {k: v for k, v in team.items() if k not in ("participant", "meta")}
    assert client.put("CareTeam/team", json=without).status_code == 200
    assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 404
    back = {k: v for k, v in team.items() if k != "meta"}
    assert client.put("CareTeam/team", json=back).status_code == 200
    assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 200


def test_a_kept_grant_starts_and_ends_with_its_period(
    world: dict[str, Any], database_url: str
) -> None:
    turn = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    gp = {"type": "permit", "actor": [actor("Organization/gp")]}
    until = {**gp, "class": classes("CarePlan"), "period": {"end": turn}}
    since = {**gp, "class": classes("Observation"), "period": {"start": turn}}
    assert _grant(world, privacy_consent("until", "anna", until)).status_code == 201
    assert _grant(world, privacy_consent("since", "anna", since)).status_code == 201
    clock = _MovableClock()
    with _another_gateway(database_url, clock) as other:
        headers = _gp_at(world, other)

        def status(path: str) -> int:
            return httpx.get(f"{other}/{path}", headers=headers).status_code

        for _ in range(2):
            assert (status("CarePlan/plan-anna"), status("Observation/obs-anna")) == (200, 404)
        clock.ahead = dt.timedelta(minutes=3)  # within the token's five minutes
        assert (status("CarePlan/plan-anna"), status("Observation/obs-anna")) == (404, 200)


def test_a_callers_filter_is_made_once_and_again_when_its_grants_change(
    world: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filter a decision compiles to is kept with the grants it was made from (ADR
    0031): the same caller's next request takes it; a revocation (a new epoch) or a period
    that turned (the same epoch, other grants) makes it anew, and decides anew."""
    made: list[AccessFilter] = []
    original = AccessFilter.of.__func__  # type: ignore[attr-defined]

    def counted(cls: type[AccessFilter], *args: Any) -> AccessFilter:
        made.append(original(cls, *args))
        return made[-1]

    monkeypatch.setattr(AccessFilter, "of", classmethod(counted))
    turn = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = {**GP_PLAN_AND_OBS, "period": {"end": turn}}
    consent = privacy_consent("gp-grant", "anna", until)
    assert _grant(world, consent).status_code == 201
    clock = _MovableClock()
    with _another_gateway(database_url, clock) as other:
        headers = _gp_at(world, other)

        def status() -> int:
            return httpx.get(f"{other}/CarePlan/plan-anna", headers=headers).status_code

        made.clear()
        assert [status() for _ in range(3)] == [200, 200, 200]
        assert len(made) == 1  # made once, kept for the next two
        assert made[0].grants and made[0].patients == frozenset()
        granted = made[0]
        assert _grant(world, {**consent, "status": "inactive"}).status_code == 200
        made.clear()  # (the client's own requests make filters of their own)
        assert status() == 404  # a new epoch: made anew, without the grant
        assert len(made) == 1 and not made[0].grants
        assert _grant(world, consent).status_code == 200
        made.clear()
        assert [status(), status()] == [200, 200]
        assert len(made) == 1 and made[0].grants
        assert made[0] is granted  # the same decision again: the same object (ADR 0033)
        clock.ahead = dt.timedelta(minutes=3)  # the period ended; the epoch stands still
        assert [status(), status()] == [404, 404]
        assert len(made) == 2 and not made[1].grants


def _granted_and_counted(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Anna grants the GP practice her plans and Observations; every compartment lookup
    from now on is recorded (the keys it asked for) in the list returned."""
    asked: list[list[int]] = []
    original = Lookups.patients_of

    def counted(self: Lookups, pks: list[int]) -> dict[int, frozenset[str]]:
        asked.append(list(pks))
        return original(self, pks)

    monkeypatch.setattr(Lookups, "patients_of", counted)
    granted = _grant(world, privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS))
    assert granted.status_code in (200, 201)
    return asked


def _entries(world: dict[str, Any], query: str) -> int:
    """How many entries of Anna's access log ``query`` finds, as she reads it."""
    found = _get(world, "anna", f"AuditEvent?{query}&_summary=count")
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


def test_a_granted_read_names_its_patient_from_its_own_statement(
    world: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read under a grant returns the compartment's patients with the row (ADR 0033):
    its access-log entry names the client without a lookup of its own, and the client
    finds it in their log."""
    asked = _granted_and_counted(world, monkeypatch)

    def entries() -> int:
        return _entries(world, "entity=CarePlan/plan-anna")

    before = entries()
    with _another_gateway(database_url) as other:
        headers = _gp_at(world, other)
        asked.clear()
        assert httpx.get(f"{other}/CarePlan/plan-anna", headers=headers).status_code == 200
        assert asked == []
        assert httpx.get(f"{other}/CarePlan/plan-bert", headers=headers).status_code == 404
    assert entries() == before + 1


def test_a_granted_search_names_its_patients_from_its_page_statement(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search's page is read with its compartments' patients (ADR 0035): its access-log
    entry names the client without a lookup of its own (an included resource still has
    one), and the client finds it in their log."""
    asked = _granted_and_counted(world, monkeypatch)

    def entries() -> int:
        return _entries(world, "entity=Observation/obs-anna&subtype=search-type")

    before = entries()
    asked.clear()
    found = _get(world, "gp", "Observation?subject=Patient/anna")
    assert _ids(found) == ["Observation/obs-anna"]  # the labelled one is denied
    assert asked == []
    with_plan = _get(world, "gp", "Observation?subject=Patient/anna&_include=Observation:subject")
    assert _ids(with_plan) == ["Observation/obs-anna", "Patient/anna"]
    assert len(asked) == 1 and len(asked[0]) == 1  # the included Patient alone
    assert entries() == before + 2


def test_a_read_by_id_confirms_the_epoch_it_took_in_its_own_statement(
    world: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read by id takes the access epoch its process saw last instead of reading it, and
    its own statement returns the epoch with the row (ADR 0035): no statement of its own
    for the epoch while it stands still. A change through another gateway is found by that
    statement; the read runs again under the new epoch, once, and is recorded once."""
    epochs: list[str] = []
    edge, confirm = Store.access_epoch, Session.access_epoch

    def read_at_edge(self: Store, **kwargs: Any) -> int | None:
        epochs.append("edge")
        return edge(self, **kwargs)

    def read_apart(self: Session) -> int | None:
        epochs.append("apart")
        return confirm(self)

    monkeypatch.setattr(Store, "access_epoch", read_at_edge)
    monkeypatch.setattr(Session, "access_epoch", read_apart)
    consent = privacy_consent("gp-grant", "anna", GP_PLAN_AND_OBS)
    assert _grant(world, consent).status_code in (200, 201)

    def refusals() -> int:
        query = "AuditEvent?entity=CarePlan/plan-anna&outcome=4&_summary=count"
        found = _get(world, "anna", query)
        assert found.status_code == 200, found.text
        return int(found.json()["total"])

    with _another_gateway(database_url) as other:
        headers, plan = _gp_at(world, other), f"{other}/CarePlan/plan-anna"
        assert httpx.get(plan, headers=headers).status_code == 200
        epochs.clear()
        for _ in range(3):
            assert httpx.get(plan, headers=headers).status_code == 200
        assert epochs == []  # the epoch came with each read's row
        refused = refusals()
        epochs.clear()
        assert _grant(world, {**consent, "status": "inactive"}).status_code == 200
        assert httpx.get(plan, headers=headers).status_code == 404  # found moved: again
        assert refusals() == refused + 1  # the first run recorded nothing
        epochs.clear()
        assert _grant(world, consent).status_code == 200
        # the old filter finds no row to carry the epoch: a statement of its own finds it
        # moved, and the read under the new epoch finds the row
        assert httpx.get(plan, headers=headers).status_code == 200
        assert "apart" in epochs


def test_an_opt_out_with_a_nested_permit_is_found_for_that_actor_over_http(
    world: dict[str, Any],
) -> None:
    """The root names nobody; the GP is named only in a nested permit (Consent.grantee)."""
    consent = privacy_consent(
        "opt-out",
        "anna",
        {"provision": [{"type": "permit", "actor": [actor("Organization/gp")]}]},
    )
    consent["policyRule"]["coding"][0]["code"] = "OPTOUT"
    assert _grant(world, consent).status_code == 201
    assert _get(world, "gp", "CarePlan/plan-anna").status_code == 200
    assert _get(world, "nurse", "CarePlan/plan-anna").status_code == 404
    assert _get(world, "gp", "CarePlan/plan-bert").status_code == 404


def test_the_official_not_them_example_is_kept_and_enforced(world: dict[str, Any]) -> None:
    from tests.conftest import example

    consent = example("Consent-consent-example-notThem")
    consent["patient"] = {"reference": "Patient/anna"}
    consent["provision"]["actor"][0]["reference"] = {"reference": "Practitioner/nurse"}
    assert _grant(world, consent).status_code == 201
    assert _get(world, "nurse", "Observation/obs-anna").status_code == 200
    assert _get(world, "gp", "Observation/obs-anna").status_code == 404
    refused = _grant(world, example("Consent-consent-example-Out") | {"id": "out"})
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Consent.provision.actor[0].role"]


def test_a_deleted_resource_is_gone_to_whoever_could_read_it_and_unknown_to_others(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    assert (
        client.put("Patient/anna", json={"resourceType": "Patient", "id": "anna"}).status_code
        == 201
    )
    security, base = secure["security"], secure["base"]
    account(security, "anna", "patient", "Patient/anna")
    anna = login(base, security, "anna")["access_token"]
    gp_id, gp_key = backend_app(security)
    gp = backend_token(base, gp_id, gp_key).json()["access_token"]
    note = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "gewicht"},
        "subject": {"reference": "Patient/anna"},
    }
    made = httpx.post(f"{base}/Observation", json=note, headers=bearer(anna))
    assert made.status_code == 201, made.text
    url = f"{base}/Observation/{made.json()['id']}"
    assert httpx.delete(url, headers=bearer(anna)).status_code in (200, 204)
    assert httpx.get(url, headers=bearer(anna)).status_code == 410
    assert httpx.get(url, headers=bearer(gp)).status_code == 404
    found = httpx.get(f"{base}/Observation", headers=bearer(anna)).json()
    assert found["total"] == 0  # a search never finds what is deleted
