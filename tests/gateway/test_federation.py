"""Login through an external OpenID Connect provider, by configuration (issue 3).

The provider is real: a second Eigen Dossier gateway on a database of its own, which is
an OpenID Connect provider (discovery, JWKS, authorization code with PKCE, RS256 ID
tokens). The relying parties are secured gateways over the test database, configured with
its issuer, a client id and a secret, once linking logins to accounts and once by BSN.
A test client plays the browser: it follows each redirect itself and keeps the cookie.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from consent.federation import FederationError, Provider, ProviderConfig, external_subject
from consent.oauth import LoginFailed
from consent.registry import NO_PASSWORD, Account
from gateway.app import build_services
from gateway.http.app import build_http_app
from gateway.interactions.model import Services
from gateway.security import Security, build_security
from gateway.settings import Settings
from tests.conftest import _free_port, running
from tests.consents import actor, privacy_consent
from tests.smart import (
    PASSWORD,
    REDIRECT,
    account,
    bearer,
    code_of,
    exchange,
    origin,
    pkce,
    public_app,
    submit_login,
)

SCOPE = "openid fhirUser launch/patient patient/*.rs"
BSN = "999911120"


def _secured(settings: Settings, *, migrate: bool) -> tuple[Services, Security, Any]:
    services = build_services(settings, migrate=migrate)
    security = build_security(services, provider=settings.provider())
    services = dataclasses.replace(services, oauth_base=security.server.oauth_base)
    return services, security, build_http_app(services, settings, security)


@pytest.fixture(scope="module")
def world(
    _server_state: dict[str, Any], database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The provider ("DigiD") and two relying parties (link by account, link by BSN)."""
    provider_port, by_account_port, by_bsn_port = _free_port(), _free_port(), _free_port()
    provider_settings = Settings(
        database_url=f"sqlite:///{tmp_path_factory.mktemp('idp') / 'idp.db'}",
        port=provider_port,
    )
    p_services, p_security, p_app = _secured(provider_settings, migrate=True)
    callbacks = [f"http://127.0.0.1:{p}/oauth/callback" for p in (by_account_port, by_bsn_port)]
    relying, secret = p_security.server.new_app(
        name="Eigen Dossier",
        kind="confidential",
        scopes="openid",
        redirect_uris=callbacks,
        with_secret=True,
    )
    assert secret is not None
    p_security.store.save_app(relying)
    for username in ("jan.digid", BSN, "888.no.bsn"):
        account(p_security, username, "patient", "Patient/at-the-provider")
    issuer = provider_settings.public_base_url
    with contextlib.ExitStack() as stack:
        stack.callback(p_services.store.dispose)
        stack.enter_context(running(p_app, provider_port))
        world: dict[str, Any] = {
            "issuer": issuer,
            "provider": p_security,
            "client_id": relying.client_id,
            "secret": secret,
        }
        for link, port in (("account", by_account_port), ("bsn", by_bsn_port)):
            settings = Settings(
                database_url=database_url,
                port=port,
                oidc_issuer=issuer,
                oidc_client_id=relying.client_id,
                oidc_client_secret=secret,
                oidc_name="DigiD",
                oidc_link=link,
            )
            services, security, app = _secured(settings, migrate=False)
            stack.callback(services.store.dispose)
            stack.enter_context(running(app, port))
            world[link] = {"security": security, "base": settings.public_base_url}
        yield world


@pytest.fixture()
def fresh(world: dict[str, Any], services: Services) -> dict[str, Any]:
    """The world over an emptied test database."""
    return world


def _patient(services: Services, bsn: str | None = None) -> str:
    """A client in the dossier, created through the open test server."""
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": "Jansen"}]}
    if bsn:
        body["identifier"] = [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": bsn}]
    created = httpx.post(f"{services.base_url}/Patient", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _login_page(party: dict[str, Any], browser: httpx.Client, challenge: str) -> httpx.Response:
    """The app sends the browser to the gateway's login page (a fresh app each time)."""
    client_id = public_app(party["security"], scope=SCOPE)
    page = browser.get(
        f"{origin(party['base'])}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": "s-123",
            "aud": party["base"],
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert page.status_code == 200, page.text
    page.extensions["client_id"] = client_id
    return page


def _start(party: dict[str, Any], browser: httpx.Client, challenge: str) -> httpx.Response:
    """On the login page, the person picks the external login."""
    page = _login_page(party, browser, challenge)
    client_id = page.extensions["client_id"]
    assert "Inloggen met DigiD en toestaan" in page.text
    sealed = re.search(r"name='request' value='([^']+)'", page.text)
    assert sealed is not None
    form = [("request", sealed.group(1)), ("decision", "external")]
    form += [("scope", s) for s in SCOPE.split()]
    started = browser.post(
        f"{origin(party['base'])}/oauth/authorize",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    started.extensions["client_id"] = client_id
    return started


def _at_provider(world: dict[str, Any], started: httpx.Response, username: str) -> str:
    """The person logs in at the provider; where the provider sends the browser back."""
    assert started.status_code == 302, started.text
    page = httpx.get(started.headers["location"])
    assert page.status_code == 200, page.text
    back = submit_login(world["issuer"], page, username, PASSWORD, ["openid"])
    assert back.status_code == 302, back.text
    return str(back.headers["location"])


def _refused_at_provider(world: dict[str, Any], started: httpx.Response) -> str:
    """The person refuses at the provider; where the provider sends the browser back."""
    page = httpx.get(started.headers["location"])
    sealed = re.search(r"name='request' value='([^']+)'", page.text)
    assert sealed is not None
    refused = httpx.post(
        f"{origin(world['issuer'])}/oauth/authorize",
        data={"request": sealed.group(1), "decision": "deny"},
    )
    assert refused.status_code == 302
    return str(refused.headers["location"])


def _federated_login(
    world: dict[str, Any], link: str, username: str
) -> tuple[httpx.Response, str, str]:
    """The whole browser journey; (the gateway's last answer, verifier, the app's id)."""
    verifier, challenge = pkce()
    with httpx.Client() as browser:
        started = _start(world[link], browser, challenge)
        callback = _at_provider(world, started, username)
        finished = browser.get(callback)
    return finished, verifier, started.extensions["client_id"]


def test_a_linked_login_reaches_the_dossier(fresh: dict[str, Any], services: Services) -> None:
    patient = _patient(services)
    party = fresh["account"]
    party["security"].store.save_account(
        Account(
            "jan",
            NO_PASSWORD,
            "patient",
            f"Patient/{patient}",
            external_subject=external_subject(fresh["issuer"], "jan.digid"),
        )
    )
    finished, verifier, client_id = _federated_login(fresh, "account", "jan.digid")
    tokens = exchange(party["base"], client_id, code_of(finished), verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["patient"] == patient
    read = httpx.get(f"{party['base']}/Patient/{patient}", headers=bearer(body["access_token"]))
    assert read.status_code == 200
    claims = party["security"].server.verify_access_token(body["access_token"])
    assert claims["sub"] == "jan"
    # a login without a password here cannot be used with any password
    with pytest.raises(LoginFailed):
        party["security"].server.login("jan", "")
    with pytest.raises(LoginFailed):
        party["security"].server.login("jan", NO_PASSWORD)


def test_a_network_member_logs_in_to_the_portal_through_digid(
    fresh: dict[str, Any], services: Services
) -> None:
    """A related-person login linked to a DigiD subject: the portal's login page offers
    DigiD, and the member sees what the client granted their RelatedPerson, nothing else."""
    patient = _patient(services)
    open_base = services.base_url
    for resource in (
        {
            "resourceType": "RelatedPerson",
            "id": "buur",
            "patient": {"reference": f"Patient/{patient}"},
            "name": [{"family": "Smit", "given": ["Kees"]}],
        },
        {
            "resourceType": "CarePlan",
            "id": "gedeeld",
            "status": "active",
            "intent": "plan",
            "title": "Wat de buurman weet",
            "subject": {"reference": f"Patient/{patient}"},
        },
        {
            "resourceType": "CarePlan",
            "id": "niet-gedeeld",
            "status": "active",
            "intent": "plan",
            "title": "Niet voor de buurman",
            "subject": {"reference": f"Patient/{patient}"},
        },
        privacy_consent(
            "buur-mag",
            patient,
            {
                "type": "permit",
                "actor": [actor("RelatedPerson/buur")],
                "data": [{"meaning": "instance", "reference": {"reference": "CarePlan/gedeeld"}}],
            },
        ),
    ):
        kind, ident = resource["resourceType"], resource["id"]
        stored = httpx.put(f"{open_base}/{kind}/{ident}", json=resource)
        assert stored.status_code in (200, 201), stored.text
    party = fresh["account"]
    party["security"].store.save_account(
        Account(
            "buurman",
            NO_PASSWORD,
            "related-person",
            "RelatedPerson/buur",
            external_subject=external_subject(fresh["issuer"], "jan.digid"),
        )
    )
    gateway = origin(party["base"])
    with httpx.Client(base_url=gateway) as browser:
        login_page = browser.get(browser.get("/portal/login").headers["location"])
        assert "Inloggen met DigiD en toestaan" in login_page.text
        sealed = re.search(r"name='request' value='([^']+)'", login_page.text)
        assert sealed is not None
        scopes = re.findall(r"name='scope' value='([^']+)'", login_page.text)
        started = browser.post(
            "/oauth/authorize",
            content=urlencode(
                [("request", sealed.group(1)), ("decision", "external")]
                + [("scope", s) for s in scopes]
            ),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        back = browser.get(_at_provider(fresh, started, "jan.digid"))
        assert back.status_code == 302 and "/portal/callback" in back.headers["location"]
        landed = browser.get(back.headers["location"])
        assert landed.status_code == 303, landed.text
        shared = browser.get("/portal/shared")
    assert shared.status_code == 200
    assert "Wat de buurman weet" in shared.text
    assert "Niet voor de buurman" not in shared.text


def test_a_digid_client_manages_their_apps_without_a_password(
    fresh: dict[str, Any], services: Services
) -> None:
    patient = _patient(services)
    party = fresh["account"]
    subject = external_subject(fresh["issuer"], "jan.digid")
    jan = Account("jan", NO_PASSWORD, "patient", f"Patient/{patient}", external_subject=subject)
    party["security"].store.save_account(jan)
    finished, verifier, client_id = _federated_login(fresh, "account", "jan.digid")
    token = exchange(party["base"], client_id, code_of(finished), verifier).json()["access_token"]
    read = f"{party['base']}/Patient/{patient}"
    assert httpx.get(read, headers=bearer(token)).status_code == 200
    manage = f"{origin(party['base'])}/oauth/manage"
    with httpx.Client() as browser:
        page = browser.get(manage)
        assert "Inloggen met DigiD" in page.text
        assert origin(fresh["issuer"]) in page.headers["content-security-policy"]
        started = browser.post(manage, data={"action": "external"})
        callback = _at_provider(fresh, started, "jan.digid")
        back = browser.get(callback)
        assert back.status_code == 303 and back.headers["location"] == manage
        listing = browser.get(manage).text
        form = re.search(r"name='form' value='([^']+)'", listing)
        grant = re.search(r"name='authorization' value='([^']+)'", listing)
        assert form is not None and grant is not None, listing
        withdrawn = browser.post(
            manage,
            data={"action": "withdraw", "form": form.group(1), "authorization": grant.group(1)},
        )
        assert withdrawn.status_code == 303
    assert httpx.get(read, headers=bearer(token)).status_code == 401
    # cancelled at the provider: said plainly, no session
    with httpx.Client() as browser:
        started = browser.post(manage, data={"action": "external"})
        cancelled = browser.get(_refused_at_provider(fresh, started))
        assert cancelled.status_code == 403 and "cancelled" in cancelled.text
        assert "eigendossier_manage" not in browser.cookies


def test_the_login_page_may_send_the_browser_to_the_provider(fresh: dict[str, Any]) -> None:
    with httpx.Client() as browser:
        page = _login_page(fresh["account"], browser, pkce()[1])
    policy = page.headers["content-security-policy"]
    assert f"form-action 'self' {origin(fresh['issuer'])}" in policy


def test_bsn_link_finds_the_client_by_bsn(fresh: dict[str, Any], services: Services) -> None:
    patient = _patient(services, bsn=BSN)
    _patient(services)  # someone else, without a BSN
    party = fresh["bsn"]
    finished, verifier, client_id = _federated_login(fresh, "bsn", BSN)
    tokens = exchange(party["base"], client_id, code_of(finished), verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["patient"] == patient
    created = party["security"].store.account(f"external:Patient/{patient}")
    assert created is not None and created.password_hash == NO_PASSWORD
    assert created.external_subject == external_subject(fresh["issuer"], BSN)
    assert BSN not in repr(created)  # only its digest is kept with the login
    again, verifier, client_id = _federated_login(fresh, "bsn", BSN)
    assert exchange(party["base"], client_id, code_of(again), verifier).json()["patient"] == patient


@pytest.mark.parametrize(
    ("link", "username", "bsn_on_file"),
    [
        ("account", BSN, True),  # account mode never matches by BSN
        ("bsn", "888.no.bsn", False),  # not a BSN at all
        ("bsn", BSN, False),  # a BSN nobody here has
    ],
)
def test_a_person_nobody_is_linked_to_is_refused(
    fresh: dict[str, Any], services: Services, link: str, username: str, bsn_on_file: bool
) -> None:
    if bsn_on_file:
        _patient(services, bsn=BSN)
    finished, _, _ = _federated_login(fresh, link, username)
    assert finished.status_code == 403
    assert "No dossier here is linked to this DigiD login" in finished.text
    assert BSN not in finished.text


def test_two_patients_with_one_bsn_are_not_guessed_between(
    fresh: dict[str, Any], services: Services
) -> None:
    _patient(services, bsn=BSN)
    _patient(services, bsn=BSN)
    finished, _, _ = _federated_login(fresh, "bsn", BSN)
    assert finished.status_code == 403


def test_the_callback_needs_this_browser_and_our_state(fresh: dict[str, Any]) -> None:
    party = fresh["account"]
    with httpx.Client() as first, httpx.Client() as second:
        started = _start(party, first, pkce()[1])
        callback = _at_provider(fresh, started, "jan.digid")
        # another browser (no cookie) cannot finish it
        assert second.get(callback).status_code == 400
        # nor a browser that started a login of its own
        other = _start(party, second, pkce()[1])
        assert other.status_code == 302
        answer = second.get(callback)
        assert answer.status_code == 400
        assert "another browser" in answer.text
        # a state that is not ours
        query = parse_qs(urlsplit(callback).query)
        forged = f"{origin(party['base'])}/oauth/callback?" + urlencode(
            {"code": query["code"][0], "state": query["state"][0][:-4] + "AAAA"}
        )
        assert first.get(forged).status_code == 400
        # the code once more, after it was used: the provider refuses it
        used = first.get(callback)
        assert used.status_code == 403  # used up here: nobody linked to jan.digid
        cookie = started.cookies.get("eigendossier_login")
        replay = httpx.get(callback, cookies={"eigendossier_login": cookie or ""})
        assert replay.status_code == 502
        assert "invalid_grant" in replay.text


def test_refusing_at_the_provider_reaches_the_app_as_access_denied(
    fresh: dict[str, Any],
) -> None:
    party = fresh["account"]
    with httpx.Client() as browser:
        started = _start(party, browser, pkce()[1])
        back = browser.get(_refused_at_provider(fresh, started))
    assert back.status_code == 302
    location = back.headers["location"]
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["s-123"]


def test_an_unreachable_provider_is_said_plainly(services: Services) -> None:
    settings = Settings(
        database_url=str(services.store.engine.url.render_as_string(hide_password=False)),
        port=_free_port(),
        oidc_issuer=f"http://127.0.0.1:{_free_port()}/fhir",
        oidc_client_id="ours",
        oidc_client_secret="s3cret-s3cret",
        oidc_name="DigiD",
    )
    own, security, app = _secured(settings, migrate=False)
    party = {"security": security, "base": settings.public_base_url}
    with running(app, settings.port), httpx.Client() as browser:
        started = _start(party, browser, pkce()[1])
    own.store.dispose()
    assert started.status_code == 502
    assert "DigiD cannot be reached now" in started.text


# -- the ID token checks, against the real provider's discovery and keys ----------------------


def _provider(world: dict[str, Any]) -> Provider:
    config = ProviderConfig(
        issuer=world["issuer"], client_id=world["client_id"], client_secret=world["secret"]
    )
    return Provider(config)


def _id_token(world: dict[str, Any], minutes: int = 5, **claims: Any) -> str:
    """An ID token the provider really signed (RS256), for our client id unless told."""
    body = {"sub": "jan.digid", "nonce": "n-1", **claims}
    audience = body.pop("aud", world["client_id"])
    lifetime = dt.timedelta(minutes=minutes)
    return str(
        world["provider"].server.tokens.sign(
            body, audience=audience, lifetime=lifetime, algorithm="RS256"
        )
    )


def _provider_kid(world: dict[str, Any]) -> str:
    keys = world["provider"].server.jwks()["keys"]
    return str(next(k["kid"] for k in keys if k["kty"] == "RSA"))


def test_a_good_id_token_is_accepted(world: dict[str, Any]) -> None:
    claims = _provider(world).verify_id_token(_id_token(world), nonce="n-1")
    assert claims["sub"] == "jan.digid"


@pytest.mark.parametrize(
    "fault",
    ["nonce", "audience", "expired", "foreign key", "alg none", "HS256", "tampered", "garbage"],
)
def test_a_bad_id_token_is_refused(world: dict[str, Any], fault: str) -> None:
    provider = _provider(world)
    good = _id_token(world)
    if fault == "nonce":
        token = _id_token(world, nonce="someone-else")
    elif fault == "audience":
        token = _id_token(world, aud="another-relying-party")
    elif fault == "expired":
        token = _id_token(world, minutes=-5)
    elif fault == "foreign key":  # the provider's kid, signed by a key that is not theirs
        now = int(time.time())
        claims = {
            "iss": world["issuer"],
            "aud": world["client_id"],
            "sub": "jan.digid",
            "nonce": "n-1",
            "iat": now,
            "exp": now + 300,
        }
        header = {"alg": "RS256", "kid": _provider_kid(world), "typ": "JWT"}
        token = jwt.encode(header, claims, RSAKey.generate_key(2048), algorithms=["RS256"])
    elif fault == "alg none":
        token = "eyJhbGciOiJub25lIn0." + good.split(".")[1] + "."
    elif fault == "HS256":
        header = {"alg": "HS256", "kid": _provider_kid(world)}
        token = jwt.encode(header, {"sub": "x"}, OctKey.generate_key(256), algorithms=["HS256"])
    elif fault == "tampered":
        head, body, signature = good.split(".")
        token = f"{head}.{body[:-2]}xx.{signature}"
    else:
        token = "not-a-token"
    with pytest.raises(FederationError) as raised:
        provider.verify_id_token(token, nonce="n-1")
    assert raised.value.status == 502


def test_a_provider_announcing_another_issuer_is_refused(world: dict[str, Any]) -> None:
    config = ProviderConfig(
        issuer=world["issuer"].replace("127.0.0.1", "localhost"),  # the same server
        client_id=world["client_id"],
        client_secret=world["secret"],
    )
    with pytest.raises(FederationError) as raised:
        Provider(config).metadata()
    assert raised.value.status == 502
    assert "announces another issuer" in raised.value.description


def test_misconfiguration_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="link is one of"):
        ProviderConfig(issuer="https://idp", client_id="a", client_secret="b", link="email")
    with pytest.raises(ValueError, match="openid"):
        ProviderConfig(issuer="https://idp", client_id="a", client_secret="b", scope="profile")
    with pytest.raises(ValueError, match="client secret"):
        ProviderConfig(issuer="https://idp", client_id="a", client_secret="")
