"""The portal in a real browser: Debian's Chromium driven by Playwright, against the real
gateway over HTTP, every page checked by axe-core (WCAG 2.1 A and AA rules).

Screenshots of each page are taken on every run; with EIGENDOSSIER_UPDATE_SCREENSHOTS=1
they are written to docs/portal/ (the pictures in docs/portal.md), else to a temporary
folder. Without Chromium the tests are skipped, except in CI (``CI`` set), where they fail:
``scripts/test.sh`` installs it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright_sync

from tests.gateway.portal.conftest import BTG_REASON, FAR, gp_token, the_doctor_breaks_the_glass
from tests.smart import PASSWORD, bearer, login

CHROMIUM = "/usr/bin/chromium"
DOCS = pathlib.Path(__file__).parents[3] / "docs" / "portal"
_AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not pathlib.Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail(
                "Chromium is missing: scripts/test.sh installs it (apt-get install chromium)"
            )
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture()
def shots(tmp_path: pathlib.Path) -> pathlib.Path:
    if os.environ.get("EIGENDOSSIER_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path


def _accessible(page: Any) -> None:
    """axe-core finds no WCAG 2.1 A/AA violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page, options={"runOnly": {"type": "tag", "values": _AXE_TAGS}})
    assert result.violations_count == 0, result.generate_report()


def _log_in(context: Any, origin: str, username: str) -> Any:
    page = context.new_page()
    page.goto(f"{origin}/portal")
    page.get_by_role("link", name="Inloggen").click()
    page.get_by_role("textbox", name="Gebruikersnaam").fill(username)
    page.get_by_label("Wachtwoord", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Inloggen en toestaan").click()
    return page


def test_the_client_sees_her_plan_and_scores_grants_the_gp_withdraws_and_sees_who_looked(
    chromium: Any, dossier: dict[str, Any], shots: pathlib.Path
) -> None:
    origin = dossier["base"].rsplit("/fhir", 1)[0]
    context = chromium.new_context(locale="nl-NL", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(f"{origin}/portal")
    _accessible(page)
    page.screenshot(path=shots / "welkom.png")
    page.keyboard.press("Tab")  # the first stop is the skip link
    assert page.evaluate("document.activeElement.textContent") == "Naar de inhoud"
    page.close()

    page = _log_in(context, origin, "anna")
    page.wait_for_url("**/portal/plan")
    assert page.get_by_role("heading", name="Weer grip op geld en post").is_visible()
    assert page.get_by_role("heading", name="Crisisplan").is_visible()
    _accessible(page)
    page.screenshot(path=shots / "mijn-plan.png", full_page=True)

    page.get_by_role("link", name="Mijn scores").click()
    assert page.locator("svg.chart").count() == 13
    assert page.get_by_role("img", name="Financiën (2017)").is_visible()
    assert page.get_by_role("table").first.is_visible()
    _accessible(page)
    page.screenshot(path=shots / "mijn-scores.png", full_page=True)

    gp = gp_token(dossier)
    plan = f"{dossier['base']}/CarePlan/krachtplan"
    assert httpx.get(plan, headers=bearer(gp)).status_code == 404

    page.get_by_role("link", name="Wie mag wat zien").click()
    page.get_by_label("Aan wie").select_option(label="Huisartsenpraktijk Zuid")
    page.get_by_label("uw plan (doelen, afspraken, zorgteam)").check()
    page.get_by_label("Tot en met").fill(FAR)
    page.get_by_role("button", name="Toegang geven").click()
    notice = page.get_by_role("status")
    assert "Huisartsenpraktijk Zuid heeft nu toegang" in notice.inner_text()
    assert page.get_by_text("Huisartsenpraktijk Zuid mag uw plan").is_visible()
    _accessible(page)
    page.screenshot(path=shots / "wie-mag-wat-zien.png", full_page=True)

    assert httpx.get(plan, headers=bearer(gp)).status_code == 200  # granted: the GP reads
    own = login(dossier["base"], dossier["security"], "anna")["access_token"]
    visit = httpx.get(f"{dossier['base']}/Encounter", headers=bearer(own)).json()["entry"][0]
    refused = f"{dossier['base']}/Encounter/{visit['resource']['id']}"
    assert httpx.get(refused, headers=bearer(gp)).status_code == 404  # not granted: refused

    page.get_by_role("button", name="Toegang van Huisartsenpraktijk Zuid intrekken").click()
    assert "heeft geen toegang meer" in page.get_by_role("status").inner_text()
    assert httpx.get(plan, headers=bearer(gp)).status_code == 404  # withdrawn, at once

    page.get_by_role("link", name="Wie heeft gekeken").click()
    log = page.get_by_role("table", name="Wie heeft gekeken")
    text = log.inner_text()
    assert "Huisartsenpraktijk Zuid" in text and "toegestaan" in text and "geweigerd" in text
    _accessible(page)
    page.screenshot(path=shots / "wie-heeft-gekeken.png", full_page=True)

    page.get_by_role("link", name="Apps").click()
    assert page.get_by_text("(dit portaal)").is_visible()
    _accessible(page)
    page.screenshot(path=shots / "apps.png", full_page=True)

    page.get_by_role("link", name="Mijn gegevens").click()
    _accessible(page)
    page.screenshot(path=shots / "mijn-gegevens.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download alles als FHIR-bestand (JSON)").click()
    bundle = json.loads(pathlib.Path(download.value.path()).read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and len(bundle["entry"]) > 20

    page.get_by_role("button", name="Uitloggen").click()
    assert page.get_by_role("status").inner_text() == "U bent uitgelogd."
    context.close()


def test_a_network_member_sees_the_crisis_plan_and_break_the_glass_is_highlighted(
    chromium: Any, dossier: dict[str, Any], shots: pathlib.Path
) -> None:
    origin = dossier["base"].rsplit("/fhir", 1)[0]
    anna = chromium.new_context(locale="nl-NL", viewport={"width": 1100, "height": 900})
    page = _log_in(anna, origin, "anna")
    page.get_by_role("link", name="Wie mag wat zien").click()
    page.get_by_label("Aan wie").select_option(label="Lisa Jansen")
    page.get_by_label("uw crisisplan").check()
    page.get_by_label("Tot en met").fill((dt.date.today() + dt.timedelta(days=30)).isoformat())
    page.get_by_role("button", name="Toegang geven").click()
    assert page.get_by_text("Lisa Jansen mag uw crisisplan zien").is_visible()

    lisa = chromium.new_context(locale="nl-NL", viewport={"width": 390, "height": 844})
    phone = _log_in(lisa, origin, "lisa")
    phone.wait_for_url("**/portal/shared")
    assert phone.get_by_role("heading", name="Crisisplan").is_visible()
    assert phone.get_by_text("Weer grip op geld en post").count() == 0
    wide = phone.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert wide is False  # fits a phone screen
    _accessible(phone)
    phone.screenshot(path=shots / "netwerk-telefoon.png", full_page=True)
    lisa.close()

    the_doctor_breaks_the_glass(dossier)

    page.get_by_role("link", name="Wie heeft gekeken").click()
    flagged = page.locator("tr.btg-row")
    assert flagged.count() >= 1
    assert f"Noodtoegang: {BTG_REASON}" in flagged.first.inner_text()
    assert "Tom Bakker" in flagged.first.inner_text()
    assert "Lisa Jansen" in page.get_by_role("table", name="Wie heeft gekeken").inner_text()
    _accessible(page)
    page.screenshot(path=shots / "noodtoegang.png", full_page=True)
    anna.close()


def test_english_pages_for_an_english_browser(
    chromium: Any, dossier: dict[str, Any], shots: pathlib.Path
) -> None:
    origin = dossier["base"].rsplit("/fhir", 1)[0]
    context = chromium.new_context(locale="en-GB", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(f"{origin}/portal")
    assert page.get_by_role("heading", name="Welcome to your own dossier").is_visible()
    assert page.locator("html").get_attribute("lang") == "en"
    _accessible(page)
    context.close()


def test_every_page_fits_a_phone_and_a_grant_can_be_made_by_keyboard_alone(
    chromium: Any, dossier: dict[str, Any]
) -> None:
    origin = dossier["base"].rsplit("/fhir", 1)[0]
    phone = chromium.new_context(locale="nl-NL", viewport={"width": 360, "height": 740})
    page = _log_in(phone, origin, "anna")
    page.wait_for_url("**/portal/plan")
    for path in ("plan", "scores", "access", "log", "apps", "data"):
        page.goto(f"{origin}/portal/{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"/portal/{path} is {overflow}px wider than a phone"
    page.goto(f"{origin}/portal/access")
    page.get_by_label("Aan wie").focus()
    page.keyboard.press("ArrowDown")  # "Kies..." -> the first in the directory
    chosen = page.get_by_label("Aan wie").input_value()
    assert chosen.startswith("Organization/")
    page.keyboard.press("Tab")  # the first category
    page.keyboard.press("Space")
    page.keyboard.press("Enter")  # submits the form (the end date is filled in)
    assert "heeft nu toegang" in page.get_by_role("status").inner_text()
    phone.close()
