"""The SMART management endpoint: a person logs in, sees the apps they allowed and
withdraws one; its tokens stop at once. Another site cannot make the browser withdraw
anything, a copied session ends with logging out. A test client plays the browser."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.smart import PASSWORD, account, bearer, login, origin


@pytest.fixture()
def anna(secure: dict[str, Any], client: httpx.Client) -> dict[str, Any]:
    """Anna, who allowed one app into her dossier; Bert, who allowed another."""
    for patient in ("anna", "bert"):
        assert (
            client.put(
                f"Patient/{patient}", json={"resourceType": "Patient", "id": patient}
            ).status_code
            == 201
        )
    security, base = secure["security"], secure["base"]
    account(security, "anna", "patient", "Patient/anna")
    account(security, "bert", "patient", "Patient/bert")
    return {
        "base": base,
        "manage": f"{origin(base)}/oauth/manage",
        "token": login(base, security, "anna")["access_token"],
        "bert": login(base, security, "bert")["access_token"],
        "security": security,
    }


def _works(anna: dict[str, Any], token: str, patient: str = "anna") -> bool:
    read = httpx.get(f"{anna['base']}/Patient/{patient}", headers=bearer(token))
    assert read.status_code in (200, 401), read.text
    return read.status_code == 200


def _logged_in(anna: dict[str, Any], browser: httpx.Client, username: str = "anna") -> str:
    """Log in on the page; the listing it shows."""
    assert "Log in om te zien welke apps" in browser.get(anna["manage"]).text
    answer = browser.post(
        anna["manage"], data={"action": "login", "username": username, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "path=/oauth/manage" in cookie and "samesite=lax" in cookie
    listing = browser.get(anna["manage"])
    assert listing.status_code == 200
    assert listing.headers["cache-control"] == "no-store"
    return listing.text


def _form(listing: str, name: str) -> str:
    found = re.search(rf"name='{name}' value='([^']+)'", listing)
    assert found is not None, listing
    return found.group(1)


def test_withdrawing_an_app_stops_its_tokens_at_once(anna: dict[str, Any]) -> None:
    with httpx.Client() as browser:
        listing = _logged_in(anna, browser)
        assert "alles aanmaken, lezen, wijzigen, verwijderen en zoeken (patient)" in listing
        assert _works(anna, anna["token"])
        withdrawn = browser.post(
            anna["manage"],
            data={
                "action": "withdraw",
                "form": _form(listing, "form"),
                "authorization": _form(listing, "authorization"),
            },
        )
        assert withdrawn.status_code == 303
        assert "ingetrokken" in browser.get(anna["manage"]).text
    assert not _works(anna, anna["token"])
    assert _works(anna, anna["bert"], "bert")  # Bert's app goes on


def test_another_site_cannot_make_the_browser_withdraw(anna: dict[str, Any]) -> None:
    with httpx.Client() as browser:
        listing = _logged_in(anna, browser)
        target = _form(listing, "authorization")
        forged = browser.post(
            anna["manage"], data={"action": "withdraw", "form": "guess", "authorization": target}
        )
        assert forged.status_code == 403
    no_session = httpx.post(anna["manage"], data={"action": "withdraw", "authorization": target})
    assert no_session.status_code == 401 and "Log opnieuw in" in no_session.text
    assert _works(anna, anna["token"])


def test_only_ones_own_authorizations_can_be_withdrawn(anna: dict[str, Any]) -> None:
    with httpx.Client() as browser:
        bert_listing = _logged_in(anna, browser, "bert")
    berts = _form(bert_listing, "authorization")
    with httpx.Client() as browser:
        listing = _logged_in(anna, browser)
        browser.post(
            anna["manage"],
            data={"action": "withdraw", "form": _form(listing, "form"), "authorization": berts},
        )
    assert _works(anna, anna["bert"], "bert")


def test_logging_out_ends_even_a_copied_session(anna: dict[str, Any]) -> None:
    with httpx.Client() as browser:
        listing = _logged_in(anna, browser)
        session = browser.cookies["eigendossier_manage"]
        out = browser.post(
            anna["manage"], data={"action": "logout", "form": _form(listing, "form")}
        )
        assert out.status_code == 303
        assert "Log in om te zien welke apps" in browser.get(anna["manage"]).text
    copied = httpx.get(anna["manage"], cookies={"eigendossier_manage": session})
    assert "Log in om te zien welke apps" in copied.text


def test_a_wrong_password_or_a_forged_session_gets_the_login_page(anna: dict[str, Any]) -> None:
    wrong = httpx.post(
        anna["manage"], data={"action": "login", "username": "anna", "password": "wrong"}
    )
    assert wrong.status_code == 401 and "Inloggen mislukt" in wrong.text
    assert "eigendossier_manage" not in wrong.headers.get("set-cookie", "")
    access_token = {"eigendossier_manage": anna["token"]}  # signed by us, but not a session
    assert "Log in om te zien welke apps" in httpx.get(anna["manage"], cookies=access_token).text
    bad = httpx.post(anna["manage"], content=b"\xff\xfe", headers={"Content-Type": "text/plain"})
    assert bad.status_code in (400, 415)


def test_the_pages_are_dutch_by_default_and_english_on_request(anna: dict[str, Any]) -> None:
    dutch = httpx.get(anna["manage"])
    assert "<html lang='nl'>" in dutch.text and dutch.headers["content-language"] == "nl"
    assert "Gebruikersnaam" in dutch.text and "Login name" not in dutch.text
    for header in ("en", "en-GB,en;q=0.9", "de-DE, en;q=0.5", "fr;q=0.9, en-US;q=0.8"):
        english = httpx.get(anna["manage"], headers={"Accept-Language": header})
        assert "<html lang='en'>" in english.text, header
        assert "Login name" in english.text and "Gebruikersnaam" not in english.text
    for header in ("nl-NL", "en;q=0.4, nl;q=0.8", "de, fr", ""):
        page = httpx.get(anna["manage"], headers={"Accept-Language": header})
        assert "<html lang='nl'>" in page.text, header


def test_every_text_is_in_both_languages() -> None:
    from gateway.http import texts

    catalogue = texts._CATALOGUE
    assert set(catalogue) == set(texts.LANGUAGES)
    assert set(catalogue["nl"]) == set(catalogue["en"])
    english = texts.Texts("en")
    dutch = texts.Texts("nl")
    assert english.scope_label("patient/Observation.rs") == "read and search Observation (patient)"
    assert dutch.scope_label("patient/Observation.rs") == "Observation lezen en zoeken (patient)"
    assert dutch.scope_label("user/*.read") == "alles lezen (user)"
    assert (
        english.scope_label("patient/Observation.rs?category=survey")
        == "read and search Observation where category=survey (patient)"
    )
