"""The portal's test world: the demo dossier behind the secured gateway, and its people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from consent.registry import AccountKind
from gateway.loading import load
from mappings.care.demo import demo_dossier
from tests.portal import PortalBrowser
from tests.smart import account, backend_app, backend_token, bearer, login, public_app

FAR = (dt.date.today() + dt.timedelta(days=120)).isoformat()
GP_AGB = "http://fhir.nl/fhir/NamingSystem/agb-z|01234567"  # Huisartsenpraktijk Zuid's
BTG_REASON = "Bewusteloos aangetroffen bij huisbezoek"


@pytest.fixture()
def dossier(secure: dict[str, Any]) -> dict[str, Any]:
    """The demo dossier behind the secured gateway, with Anna, Lisa, the GP system and a
    doctor on call (not in Anna's team) as logins."""
    services, security = secure["services"], secure["security"]
    extra = {
        "resourceType": "Practitioner",
        "id": "dienstdoende",
        "name": [{"family": "Bakker", "given": ["Tom"]}],
    }
    load(services, [*demo_dossier(dt.date.today()), extra], "test: the portal's demo")
    account(security, "anna", AccountKind.PATIENT, "Patient/anna")
    account(security, "lisa", AccountKind.RELATED_PERSON, "RelatedPerson/lisa")
    account(security, "tom", AccountKind.PRACTITIONER, "Practitioner/dienstdoende")
    gp, key = backend_app(security, organization=GP_AGB)
    return {**secure, "gp": (gp, key)}


@pytest.fixture()
def browsers(dossier: dict[str, Any]) -> Iterator[Callable[..., PortalBrowser]]:
    """New browsers on the portal (each closed at the end)."""
    opened: list[PortalBrowser] = []

    def new(language: str = "nl") -> PortalBrowser:
        opened.append(PortalBrowser(dossier["base"], language))
        return opened[-1]

    yield new
    for browser in opened:
        browser.close()


@pytest.fixture()
def anna(browsers: Callable[..., PortalBrowser]) -> PortalBrowser:
    browser = browsers()
    landed = browser.login("anna")
    assert landed.status_code == 303 and landed.headers["location"] == "/portal", landed.text
    return browser


def gp_token(dossier: dict[str, Any]) -> str:
    gp, key = dossier["gp"]
    response = backend_token(dossier["base"], gp, key)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def gp_reads(dossier: dict[str, Any], token: str, path: str) -> int:
    return httpx.get(f"{dossier['base']}/{path}", headers=bearer(token)).status_code


def grant(browser: PortalBrowser, recipient: str, *categories: str) -> httpx.Response:
    fields = [("action", "grant"), ("recipient", recipient), ("end", FAR)]
    fields += [("category", c) for c in categories]
    return browser.post("/portal/access", fields, csrf=browser.csrf("/portal/access"))


def consents(dossier: dict[str, Any]) -> list[dict[str, Any]]:
    token = login(dossier["base"], dossier["security"], "anna")["access_token"]
    found = httpx.get(
        f"{dossier['base']}/Consent", params={"patient": "Patient/anna"}, headers=bearer(token)
    ).json()
    return [e["resource"] for e in found.get("entry", [])]


def the_doctor_breaks_the_glass(dossier: dict[str, Any]) -> None:
    """Tom, a doctor on call outside Anna's team, breaks the glass and reads her crisis
    plan under it."""
    scope = "openid fhirUser user/*.cruds"
    app = public_app(dossier["security"], scope=scope)
    tom = login(dossier["base"], dossier["security"], "tom", scope=scope, client_id=app)
    opened = httpx.post(
        f"{dossier['base']}/Patient/anna/$break-the-glass",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": BTG_REASON}],
        },
        headers=bearer(tom["access_token"]),
    )
    assert opened.status_code == 201, opened.text
    read = f"{dossier['base']}/CarePlan/crisisplan"
    assert httpx.get(read, headers=bearer(tom["access_token"])).status_code == 200
