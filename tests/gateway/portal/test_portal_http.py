"""The portal over real HTTP: login, every page, grants that become Consents the gateway
enforces, the access log in words, network members, and what bad input gets.

The browser here is httpx with cookies (tests/portal.py); the same scenarios in Chromium
are in test_browser.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.loading import load
from gateway.portal.app import PORTAL_CLIENT_ID
from tests.gateway.portal.conftest import (
    BTG_REASON,
    FAR,
    GP_AGB,
    consents,
    gp_reads,
    gp_token,
    grant,
    the_doctor_breaks_the_glass,
)
from tests.portal import PortalBrowser, text_of
from tests.smart import bearer, login

# -- logging in -----------------------------------------------------------------------------


def test_without_a_session_the_portal_sends_the_person_to_log_in(
    browsers: Callable[..., PortalBrowser],
) -> None:
    browser = browsers()
    home = browser.get("/portal")
    assert home.status_code == 200 and "Inloggen" in text_of(home.text)
    for path in ("/portal/plan", "/portal/scores", "/portal/access", "/portal/log"):
        assert browser.get(path).headers["location"] == "/portal/login"
    start = browser.get("/portal/login")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["client_id"] == [PORTAL_CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"] and query["state"][0]
    cookie = start.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/portal/callback" in cookie


def test_a_login_gives_an_httponly_session_and_pages_without_any_script(
    anna: PortalBrowser,
) -> None:
    cookies = [c for c in anna.http.cookies.jar if c.name == "eigendossier_portal"]
    assert cookies and cookies[0].has_nonstandard_attr("HttpOnly")
    page = anna.get("/portal/plan")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy and page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text and " style=" not in page.text
    assert "Ingelogd als Anna Jansen" in text_of(page.text)


def test_a_callback_with_another_state_or_without_the_login_cookie_is_refused(
    browsers: Callable[..., PortalBrowser],
) -> None:
    browser = browsers()
    assert browser.get("/portal/callback", code="x", state="y").status_code == 400
    browser.get("/portal/login")
    assert browser.get("/portal/callback", code="x", state="not-the-state").status_code == 400
    assert "eigendossier_portal" not in {c.name for c in browser.http.cookies.jar}


def test_a_changed_session_cookie_is_no_session(anna: PortalBrowser) -> None:
    value = anna.http.cookies.get("eigendossier_portal", path="/portal")
    assert value
    anna.http.cookies.clear()
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    anna.http.cookies.set("eigendossier_portal", flipped, path="/portal")
    assert anna.get("/portal/plan").headers["location"] == "/portal/login"


def test_logging_out_ends_the_authorization_not_only_the_cookie(
    anna: PortalBrowser, browsers: Callable[..., PortalBrowser]
) -> None:
    copied = anna.http.cookies.get("eigendossier_portal", path="/portal")
    out = anna.post("/portal/logout", [])
    assert out.status_code == 303 and out.headers["location"] == "/portal?bye=1"
    thief = browsers()
    thief.http.cookies.set("eigendossier_portal", copied or "", path="/portal")
    page = thief.get("/portal/plan")  # its access token may still be fresh: the gateway refuses
    assert page.status_code == 401 and "sessie is voorbij" in text_of(page.text)


# -- the pages ------------------------------------------------------------------------------


def test_my_plan_shows_the_krachtplan_the_crisis_plan_and_recent_visits(
    anna: PortalBrowser,
) -> None:
    words = text_of(anna.get("/portal/plan").text)
    assert "Weer grip op geld en post" in words  # the krachtplan's title
    assert "Elke zaterdag samen met Lisa de post openen Lisa Jansen bezig" in words
    assert "Crisisplan" in words and "Post stapelt zich op" in words and "06-12345678" in words
    assert "Recente contacten" in words and "Huisbezoek Sanne de Vries" in words
    assert "Mijn zorgteam" in words


def test_my_scores_are_a_chart_per_domain_and_the_same_numbers_in_a_table(
    anna: PortalBrowser,
) -> None:
    page = anna.get("/portal/scores").text
    charts = re.findall(r"<svg class='chart'.*?</svg>", page, flags=re.S)
    assert len(charts) == 13  # ZRM 2017
    finance = next(c for c in charts if "<title id='zrm-0-t'>Financiën (2017)</title>" in c)
    assert "stroke-dasharray" in finance  # the target line
    assert re.search(r"<desc[^>]*>[^<]*\(Intake\): 1, [^<]*: 2, [^<]*: 4; Doel 4</desc>", finance)
    words = text_of(page)
    assert "Financiën (2017) 1 2 4 4" in words and "Intake" in words and "Eindmeting" in words


def test_english_by_accept_language(browsers: Callable[..., PortalBrowser]) -> None:
    browser = browsers("en-GB,en;q=0.9")
    browser.login("anna")
    page = browser.get("/portal/scores")
    assert page.headers["content-language"] == "en"
    words = text_of(page.text)
    assert "My scores" in words and "Income (2017)" in words and "Target" in words


def test_the_download_is_annas_whole_dossier_and_nobody_elses(anna: PortalBrowser) -> None:
    bundle = anna.get("/portal/data/dossier.json")
    assert bundle.status_code == 200
    assert bundle.headers["content-disposition"].startswith("attachment")
    resources = [e["resource"] for e in bundle.json()["entry"]]
    kinds = {r["resourceType"] for r in resources}
    assert {"Patient", "CarePlan", "Goal", "Observation", "Encounter", "Consent"} <= kinds
    assert "Organization" not in kinds and "Practitioner" not in kinds  # the directory is not hers
    patients = {r["id"] for r in resources if r["resourceType"] == "Patient"}
    assert patients == {"anna"}
    subjects = {r["subject"]["reference"] for r in resources if isinstance(r.get("subject"), dict)}
    assert subjects <= {"Patient/anna"}
    page = anna.get("/portal/data/dossier.html")
    assert page.status_code == 200 and "Dossier van Anna Jansen" in text_of(page.text)
    assert anna.get("/portal/data/dossier.exe").status_code == 404


# -- grants -----------------------------------------------------------------------------------


def test_granting_the_gp_the_plan_is_a_consent_the_gateway_enforces_and_withdrawing_works_at_once(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    gp = gp_token(dossier)
    assert gp_reads(dossier, gp, "CarePlan/krachtplan") == 404
    done = grant(anna, "Organization/gp", "plan")
    assert done.status_code == 303 and "done=granted" in done.headers["location"]
    page = text_of(anna.follow(done).text)
    assert "Opgeslagen: Huisartsenpraktijk Zuid heeft nu toegang." in page
    assert "Huisartsenpraktijk Zuid mag uw plan (doelen, afspraken, zorgteam) zien, tot" in page
    written = [c for c in consents(dossier) if "Organization/gp" in str(c["provision"])]
    assert len(written) == 1 and written[0]["status"] == "active"
    assert written[0]["provision"]["period"]["end"] == FAR
    assert gp_reads(dossier, gp, "CarePlan/krachtplan") == 200
    assert gp_reads(dossier, gp, "Patient/anna") == 200
    observations = httpx.get(
        f"{dossier['base']}/Observation", params={"subject": "Patient/anna"}, headers=bearer(gp)
    ).json()
    assert observations["total"] == 0  # scores were not granted
    withdrawn = anna.post(
        "/portal/access",
        [("action", "withdraw"), ("consent", written[0]["id"])],
        csrf=anna.csrf("/portal/access"),
    )
    assert "done=withdrawn" in withdrawn.headers["location"]
    assert gp_reads(dossier, gp, "CarePlan/krachtplan") == 404  # the same token, next request
    after = text_of(anna.get("/portal/access").text)
    assert "Verlopen of ingetrokken (1)" in after


def test_changing_a_grant_keeps_its_recipient_and_rewrites_what_and_until(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    grant(anna, "Organization/gp", "plan")
    consent = next(c for c in consents(dossier) if "Organization/gp" in str(c["provision"]))
    form = anna.get("/portal/access", change=consent["id"]).text
    assert "Toegang van Huisartsenpraktijk Zuid wijzigen" in text_of(form)
    assert re.search(r"value='plan' checked", form)
    changed = anna.post(
        "/portal/access",
        [("action", "change"), ("consent", consent["id"]), ("category", "scores"), ("end", FAR)],
        csrf=anna.csrf("/portal/access"),
    )
    assert changed.status_code == 303
    gp = gp_token(dossier)
    assert gp_reads(dossier, gp, "CarePlan/krachtplan") == 404
    scores = httpx.get(
        f"{dossier['base']}/Observation", params={"subject": "Patient/anna"}, headers=bearer(gp)
    ).json()
    assert scores["total"] > 0
    (again,) = [c for c in consents(dossier) if "Organization/gp" in str(c["provision"])]
    assert again["id"] == consent["id"] and again["meta"]["versionId"] == "2"


def test_everything_except_mental_health_notes_keeps_labelled_resources_back(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    services = dossier["services"]
    note = {
        "resourceType": "Observation",
        "id": "ggz-notitie",
        "meta": {
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
            ]
        },
        "status": "final",
        "code": {"text": "Gesprek psycholoog"},
        "subject": {"reference": "Patient/anna"},
        "valueString": "Somber, slaapt slecht",
    }
    load(services, [note], "test: a labelled note")
    grant(anna, "Organization/gp", "all")
    gp = gp_token(dossier)
    assert gp_reads(dossier, gp, "CarePlan/krachtplan") == 200
    assert gp_reads(dossier, gp, "Observation/ggz-notitie") == 404
    words = text_of(anna.get("/portal/access").text)
    assert "Huisartsenpraktijk Zuid mag uw hele dossier behalve aantekeningen over geestelijke" in (
        words
    )


@pytest.mark.parametrize(
    "fields",
    [
        [("action", "grant"), ("recipient", "Organization/gp"), ("end", FAR)],  # no category
        [("action", "grant"), ("recipient", "Organization/gp"), ("category", "plan")],  # no end
        [
            ("action", "grant"),
            ("recipient", "Organization/gp"),
            ("category", "plan"),
            ("end", "2001-01-01"),
        ],
        [
            ("action", "grant"),
            ("recipient", "Organization/gp"),
            ("category", "geheim"),
            ("end", FAR),
        ],
        [("action", "grant"), ("recipient", "Patient/anna"), ("category", "plan"), ("end", FAR)],
        [
            ("action", "grant"),
            ("recipient", "Organization/gp"),
            ("category", "all"),
            ("category", "plan"),
            ("end", FAR),
        ],
        [("action", "withdraw"), ("consent", "does-not-exist")],
        [("action", "explode")],
    ],
)
def test_a_bad_choice_gets_a_clear_answer_and_writes_nothing(
    anna: PortalBrowser, dossier: dict[str, Any], fields: list[tuple[str, str]]
) -> None:
    before = len(consents(dossier))
    answer = anna.post("/portal/access", fields, csrf=anna.csrf("/portal/access"))
    assert answer.status_code == 400
    assert "Kies aan wie, ten minste één onderdeel" in text_of(answer.text)
    assert len(consents(dossier)) == before


def test_a_form_without_its_token_or_from_another_origin_changes_nothing(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    before = len(consents(dossier))
    fields = [
        ("action", "grant"),
        ("recipient", "Organization/gp"),
        ("category", "plan"),
        ("end", FAR),
    ]
    assert anna.post("/portal/access", fields, csrf="forged").status_code == 403
    assert anna.post("/portal/access", fields, Origin="https://evil.example").status_code == 403
    body = "action=grant&recipient=Organization/gp&category=plan&end=" + FAR
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    no_token = anna.http.post("/portal/access", content=body, headers=form)
    assert no_token.status_code == 403
    assert len(consents(dossier)) == before


def test_a_form_too_large_not_a_form_or_not_utf8_gets_its_own_answer(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    before = len(consents(dossier))
    token = anna.csrf()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    fields = f"csrf={token}&action=grant&recipient=Organization/gp&category=plan&end={FAR}"
    too_large = anna.http.post(
        "/portal/access", content=fields + "&x=" + "a" * 20_000, headers=form
    )
    assert too_large.status_code == 413 and "te groot" in too_large.text
    not_a_form = anna.http.post("/portal/access", json={"csrf": token, "action": "grant"})
    assert not_a_form.status_code == 415
    not_utf8 = anna.http.post("/portal/access", content=fields.encode() + b"\xff", headers=form)
    assert not_utf8.status_code == 400 and "gelezen" in not_utf8.text
    for refused in (too_large, not_a_form, not_utf8):
        assert "<script" not in refused.text
    assert len(consents(dossier)) == before


# -- who looked ---------------------------------------------------------------------------


def test_the_log_shows_the_gps_access_and_refusal_in_words(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    grant(anna, "Organization/gp", "plan")
    gp = gp_token(dossier)
    assert gp_reads(dossier, gp, "CarePlan/krachtplan") == 200
    own = login(dossier["base"], dossier["security"], "anna")["access_token"]
    visits = httpx.get(f"{dossier['base']}/Encounter", headers=bearer(own)).json()["entry"]
    visit = visits[0]["resource"]["id"]
    assert gp_reads(dossier, gp, f"Encounter/{visit}") == 404  # not granted: refused, logged
    page = anna.get("/portal/log")
    words = text_of(page.text)
    assert "Huisartsenpraktijk Zuid bekeek plannen toegestaan uw toestemming" in words
    granted = next(c for c in consents(dossier) if "Organization/gp" in str(c["provision"]))
    assert f"href='/portal/access#grant-{granted['id']}'" in page.text  # which grant
    assert "Huisartsenpraktijk Zuid bekeek contacten geweigerd" in words
    assert "uzelf" not in words.split("Tonen", 1)[1]  # by default, others only
    everyone = text_of(anna.get("/portal/log", who="all").text)
    assert "uzelf" in everyone
    only_gp = text_of(anna.get("/portal/log", who=GP_AGB).text)
    assert "Huisartsenpraktijk Zuid" in only_gp
    earlier = (dt.date.today() - dt.timedelta(days=400)).isoformat()
    nothing = anna.get("/portal/log", **{"from": earlier, "to": earlier})
    assert "Geen inzage in deze periode." in text_of(nothing.text)


def test_break_the_glass_is_shown_with_its_reason(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    the_doctor_breaks_the_glass(dossier)
    page = anna.get("/portal/log").text
    assert "class='btg-row'" in page
    assert f"Noodtoegang: {BTG_REASON}" in text_of(page)
    assert "Tom Bakker" in text_of(page)
    grants = text_of(anna.get("/portal/access").text)
    assert "Tom Bakker mag uw hele dossier zien, tot" in grants
    assert f"Noodtoegang: {BTG_REASON}" in grants


# -- apps --------------------------------------------------------------------------------------


def test_apps_lists_the_portal_and_withdraws_another_app_at_once(
    anna: PortalBrowser, dossier: dict[str, Any]
) -> None:
    other = login(dossier["base"], dossier["security"], "anna")
    assert (
        httpx.get(
            f"{dossier['base']}/Patient/anna", headers=bearer(other["access_token"])
        ).status_code
        == 200
    )
    page = anna.get("/portal/apps").text
    words = text_of(page)
    assert "Mijn Eigen Dossier (portaal)" in words and "(dit portaal)" in words
    assert "Mijn Portaal" in words
    ids = re.findall(r"name='authorization' value='([^']+)'", page)
    listed = httpx.get(
        f"{dossier['base'].rsplit('/fhir', 1)[0]}/oauth/authorizations",
        headers=bearer(other["access_token"]),
    ).json()["authorizations"]
    theirs = next(a["id"] for a in listed if a["current"])
    assert theirs in ids
    assert anna.post("/portal/apps", [("authorization", theirs)]).status_code == 303
    assert (
        httpx.get(
            f"{dossier['base']}/Patient/anna", headers=bearer(other["access_token"])
        ).status_code
        == 401
    )
    assert "ingetrokken" in text_of(anna.get("/portal/apps").text)


def test_the_authorizations_api_wants_a_persons_token(dossier: dict[str, Any]) -> None:
    origin = dossier["base"].rsplit("/fhir", 1)[0]
    assert httpx.get(f"{origin}/oauth/authorizations").status_code == 401
    forged = httpx.get(f"{origin}/oauth/authorizations", headers=bearer("a.b.c"))
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    system = httpx.get(f"{origin}/oauth/authorizations", headers=bearer(gp_token(dossier)))
    assert system.status_code == 401
    anna = login(dossier["base"], dossier["security"], "anna")
    missing = httpx.delete(
        f"{origin}/oauth/authorizations/not-hers", headers=bearer(anna["access_token"])
    )
    assert missing.status_code == 404


# -- the network ---------------------------------------------------------------------------


def test_a_network_member_sees_only_what_the_client_granted_them(
    anna: PortalBrowser, browsers: Callable[..., PortalBrowser]
) -> None:
    lisa = browsers()
    landed = lisa.login("lisa")
    assert landed.status_code == 303
    assert lisa.follow(lisa.get("/portal")).url.path == "/portal/shared"
    nothing = text_of(lisa.get("/portal/shared").text)
    assert "Niemand heeft (nu) iets met u gedeeld." in nothing
    assert "Crisisplan" not in nothing and "Weer grip op geld" not in nothing
    assert lisa.get("/portal/access").headers["location"] == "/portal/shared"  # the client's own
    grant(anna, "RelatedPerson/lisa", "crisis")
    shared = text_of(lisa.get("/portal/shared").text)
    assert "Crisisplan" in shared and "Post stapelt zich op" in shared
    assert "Weer grip op geld en post" not in shared  # the krachtplan was not granted
    assert "Dossier van Anna Jansen" in shared
    assert "uzelf Belt Anna en gaat langs" in shared  # Lisa named as herself in the plan
    log = text_of(anna.get("/portal/log").text)
    assert "Lisa Jansen zocht of vroeg op plannen toegestaan uw toestemming" in log
    assert "geweigerd" not in log  # the portal asks nothing of Lisa that Anna did not grant


def test_a_network_member_login_by_the_command_line(
    tmp_path: Any, dossier: dict[str, Any], browsers: Callable[..., PortalBrowser]
) -> None:
    from tests.conftest import run_cli

    database = str(dossier["services"].store.engine.url.render_as_string(hide_password=False))
    done = run_cli(
        "accounts",
        "add",
        "moeder",
        "--kind",
        "related-person",
        "--fhir-user",
        "RelatedPerson/lisa",
        "--password-stdin",
        database=database,
        cwd=tmp_path,
        input="lang-genoeg-wachtwoord\n",
    )
    assert done.returncode == 0, done.stderr
    wrong = run_cli(
        "accounts",
        "add",
        "buur",
        "--kind",
        "related-person",
        "--fhir-user",
        "Patient/anna",
        "--password-stdin",
        database=database,
        cwd=tmp_path,
        input="lang-genoeg-wachtwoord\n",
    )
    assert wrong.returncode != 0 and "RelatedPerson/ID" in wrong.stderr
    assert browsers().login("moeder", "lang-genoeg-wachtwoord").status_code == 303


def test_a_household_plan_says_whose_it_is(anna: PortalBrowser, dossier: dict[str, Any]) -> None:
    household = {
        "resourceType": "Group",
        "id": "huishouden-jansen",
        "type": "person",
        "actual": True,
        "name": "Huishouden Jansen",
        "member": [{"entity": {"reference": "Patient/anna"}}],
    }
    plan = {
        "resourceType": "CarePlan",
        "id": "samen",
        "status": "active",
        "intent": "plan",
        "title": "Samen rondkomen",
        "subject": {"reference": "Group/huishouden-jansen"},
    }
    load(dossier["services"], [household, plan], "test: a household plan")
    words = text_of(anna.get("/portal/plan").text)
    assert "Samen rondkomen Huishoudplan : Plan van Huishouden Jansen" in words


def test_a_crafted_link_cannot_put_words_in_the_portals_mouth(anna: PortalBrowser) -> None:
    page = anna.get("/portal/access", done="granted", who="Boef BV", grant="not-a-consent")
    words = text_of(page.text)
    assert "Opgeslagen" not in words and "Boef BV" not in words
