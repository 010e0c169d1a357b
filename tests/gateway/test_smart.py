"""SMART App Launch 2.2 and Backend Services over real HTTP: discovery, flows, bad input."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.smart import (
    FHIR,
    PASSWORD,
    REDIRECT,
    account,
    authorize,
    backend_app,
    backend_token,
    bearer,
    code_of,
    exchange,
    login,
    origin,
    pkce,
    public_app,
    submit_login,
)

PATIENT_SCOPE = "openid fhirUser launch/patient offline_access patient/*.cruds"


def _patient(client: httpx.Client, pid: str = "anna") -> None:
    resource = {"resourceType": "Patient", "id": pid, "name": [{"family": "Jansen"}]}
    assert client.put(f"Patient/{pid}", json=resource).status_code in (200, 201)


def test_discovery_has_every_required_and_recommended_field(secure: dict[str, Any]) -> None:
    base = secure["base"]
    config = httpx.get(f"{base}/.well-known/smart-configuration").json()
    for name in (
        "issuer",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "capabilities",
        "grant_types_supported",
        "code_challenge_methods_supported",
        "scopes_supported",
        "response_types_supported",
        "management_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "registration_endpoint",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
    ):
        assert name in config, name
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "client_credentials"} <= set(config["grant_types_supported"])
    for capability in (
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "permission-offline",
        "sso-openid-connect",
    ):
        assert capability in config["capabilities"], capability
    assert {"RS384", "ES384"} <= set(config["token_endpoint_auth_signing_alg_values_supported"])
    oidc = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert oidc["issuer"] == base and "RS256" in oidc["id_token_signing_alg_values_supported"]
    keys = httpx.get(config["jwks_uri"]).json()["keys"]
    assert keys and all("d" not in k and k["kid"] for k in keys)


def test_no_token_is_401_with_a_challenge_and_metadata_stays_public(
    secure: dict[str, Any],
) -> None:
    base = secure["base"]
    response = httpx.get(f"{base}/Patient", headers=FHIR)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"
    assert httpx.get(f"{base}/metadata", headers=FHIR).status_code == 200


def test_standalone_launch_with_pkce_gives_the_patient_their_own_dossier(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client, "anna")
    _patient(client, "bert")
    account(security, "anna", "patient", "Patient/anna")
    token = login(base, security, "anna")
    assert token["patient"] == "anna" and token["token_type"] == "Bearer"
    assert token["scope"] == PATIENT_SCOPE and token["expires_in"] == 300
    assert "refresh_token" in token
    keys = KeySet.import_key_set(httpx.get(f"{origin(base)}/oauth/jwks").json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    assert id_token.claims["fhirUser"] == "Patient/anna"
    assert id_token.claims["aud"] == token["client_id"]
    headers = bearer(token["access_token"])
    assert httpx.get(f"{base}/Patient/anna", headers=headers).status_code == 200
    assert httpx.get(f"{base}/Patient/bert", headers=headers).status_code == 404
    found = httpx.get(f"{base}/Patient", headers=headers).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["anna"]


def test_the_person_can_grant_less_than_the_app_asked(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    client_id = public_app(security)
    verifier, challenge = pkce()
    granted = ["launch/patient", "patient/Patient.rs"]
    code = code_of(
        authorize(base, client_id, PATIENT_SCOPE, challenge, username="anna", grant=granted)
    )
    token = exchange(base, client_id, code, verifier).json()
    assert token["scope"] == "launch/patient patient/Patient.rs"
    assert "refresh_token" not in token and "id_token" not in token
    headers = bearer(token["access_token"])
    assert httpx.get(f"{base}/Patient/anna", headers=headers).status_code == 200
    created = httpx.post(
        f"{base}/Observation",
        headers=headers,
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/anna"},
        },
    )
    assert created.status_code == 403


def test_pkce_redirect_and_code_faults_are_invalid_grant(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    client_id = public_app(security)
    verifier, challenge = pkce()
    code = code_of(authorize(base, client_id, PATIENT_SCOPE, challenge, username="anna"))
    wrong = exchange(base, client_id, code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # the code was spent by the failed attempt: a second use is refused too
    again = exchange(base, client_id, code, verifier)
    assert again.json()["error"] == "invalid_grant"
    verifier, challenge = pkce()
    code = code_of(authorize(base, client_id, PATIENT_SCOPE, challenge, username="anna"))
    moved = exchange(base, client_id, code, verifier, redirect_uri="http://127.0.0.1:9/other")
    assert moved.json()["error"] == "invalid_grant"
    assert wrong.headers["cache-control"] == "no-store"


def test_a_code_used_twice_revokes_the_tokens_it_gave(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    client_id = public_app(security)
    verifier, challenge = pkce()
    code = code_of(authorize(base, client_id, PATIENT_SCOPE, challenge, username="anna"))
    first = exchange(base, client_id, code, verifier).json()
    assert httpx.get(f"{base}/Patient/anna", headers=bearer(first["access_token"])).is_success
    assert exchange(base, client_id, code, verifier).json()["error"] == "invalid_grant"
    after = httpx.get(f"{base}/Patient/anna", headers=bearer(first["access_token"]))
    assert after.status_code == 401


def test_authorize_refuses_unknown_apps_without_redirecting_and_scope_escalation_with(
    secure: dict[str, Any],
) -> None:
    base, security = secure["base"], secure["security"]
    _, challenge = pkce()
    unknown = authorize(base, "no-such-app", PATIENT_SCOPE, challenge, username="x")
    assert unknown.status_code == 400 and "location" not in unknown.headers
    client_id = public_app(security, scope="launch/patient patient/Patient.rs")
    bad_redirect = authorize(
        base,
        client_id,
        "patient/Patient.rs",
        challenge,
        username="x",
        redirect="http://evil.example/cb",
    )
    assert bad_redirect.status_code == 400 and "location" not in bad_redirect.headers
    escalated = authorize(base, client_id, "patient/*.cruds", challenge, username="x")
    assert escalated.status_code == 302
    assert "error=invalid_scope" in escalated.headers["location"]
    assert escalated.headers["location"].startswith(REDIRECT)
    plain = httpx.get(
        f"{origin(base)}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "patient/Patient.rs",
            "aud": base,
            "code_challenge": "abc",
            "code_challenge_method": "plain",
            "state": "s",
        },
    )
    assert plain.status_code == 302 and "error=invalid_request" in plain.headers["location"]


def test_an_account_locks_after_five_failures(secure: dict[str, Any], client: httpx.Client) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    client_id = public_app(security)
    _, challenge = pkce()
    for _ in range(5):
        page = authorize(
            base, client_id, PATIENT_SCOPE, challenge, username="anna", password="wrong password!"
        )
        assert page.status_code == 401 and "Inloggen mislukt" in page.text
    locked = authorize(base, client_id, PATIENT_SCOPE, challenge, username="anna")
    assert locked.status_code == 401
    assert security.store.account("anna").locked_until is not None


def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_grant(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    token = login(base, security, "anna")
    url = f"{origin(base)}/oauth/token"
    form = {"grant_type": "refresh_token", "client_id": token["client_id"]}
    narrowed = httpx.post(
        url,
        data={
            **form,
            "refresh_token": token["refresh_token"],
            "scope": "offline_access patient/Patient.rs",
        },
    )
    assert narrowed.status_code == 200, narrowed.text
    second = narrowed.json()
    assert second["scope"] == "offline_access patient/Patient.rs"
    assert second["refresh_token"] != token["refresh_token"]
    wider = httpx.post(
        url, data={**form, "refresh_token": second["refresh_token"], "scope": "system/*.rs"}
    )
    assert wider.json()["error"] == "invalid_scope"
    replay = httpx.post(url, data={**form, "refresh_token": token["refresh_token"]})
    assert replay.json()["error"] == "invalid_grant"
    assert (
        httpx.get(f"{base}/Patient/anna", headers=bearer(second["access_token"])).status_code == 401
    )
    other = public_app(security)
    stolen = httpx.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": other,
            "refresh_token": second["refresh_token"],
        },
    )
    assert stolen.json()["error"] == "invalid_grant"


def test_backend_services_with_rs384_and_es384(secure: dict[str, Any]) -> None:
    base, security = secure["base"], secure["security"]
    for algorithm in ("RS384", "ES384"):
        client_id, key = backend_app(security, algorithm=algorithm)
        response = backend_token(base, client_id, key, "system/CarePlan.rs")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "system/CarePlan.rs"
        assert response.headers["cache-control"] == "no-store"
        search = httpx.get(f"{base}/CarePlan", headers=bearer(body["access_token"]))
        assert search.status_code == 200 and search.json()["total"] == 0


def test_backend_assertion_faults_are_invalid_client(secure: dict[str, Any]) -> None:
    base, security = secure["base"], secure["security"]
    client_id, key = backend_app(security)
    ok = backend_token(base, client_id, key, jti="once")
    assert ok.status_code == 200
    replay = backend_token(base, client_id, key, jti="once")
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    far = backend_token(base, client_id, key, exp_in=3600)
    assert far.json()["error"] == "invalid_client"
    wrong_aud = backend_token(base, client_id, key, aud=f"{base}/metadata")
    assert wrong_aud.json()["error"] == "invalid_client"
    other_key = ECKey.generate_key("P-384", parameters={"kid": key.kid})
    forged = backend_token(base, client_id, other_key)
    assert forged.json()["error"] == "invalid_client"
    unknown = backend_token(base, "no-such-app", key)
    assert unknown.json()["error"] == "invalid_client"
    escalated = backend_token(base, client_id, key, scope="system/*.cruds")
    assert escalated.json()["error"] == "invalid_scope"
    patient_scope = backend_token(base, client_id, key, scope="patient/*.rs")
    assert patient_scope.json()["error"] == "invalid_scope"


def _forge(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(claims)}."


def test_forged_expired_wrong_audience_and_unsigned_tokens_are_401(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    good = login(base, security, "anna")["access_token"]
    claims = jwt.decode(
        good, KeySet.import_key_set(security.server.jwks()), algorithms=["ES256"]
    ).claims
    tokens = security.server.tokens
    expired = tokens.sign(
        {k: v for k, v in claims.items() if k not in ("exp", "iat", "jti")},
        audience=base,
        lifetime=dt.timedelta(seconds=-60),
    )
    elsewhere = tokens.sign(
        {k: v for k, v in claims.items() if k not in ("exp", "iat", "jti")},
        audience="https://other.example/fhir",
        lifetime=dt.timedelta(minutes=5),
    )
    stranger = ECKey.generate_key("P-256", parameters={"kid": "stranger"})
    forged = jwt.encode({"alg": "ES256", "kid": "stranger"}, claims, stranger)
    unsigned = _forge(claims, {"alg": "none", "typ": "JWT"})
    tampered = good.rsplit(".", 1)[0][:-2] + "AA." + good.rsplit(".", 1)[1]
    for bad in (expired, elsewhere, forged, unsigned, tampered, "not-a-token"):
        response = httpx.get(f"{base}/Patient/anna", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert "Jansen" not in response.text


def test_introspection_and_revocation(secure: dict[str, Any], client: httpx.Client) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    token = login(base, security, "anna")
    access = token["access_token"]
    url = f"{origin(base)}/oauth/introspect"
    seen = httpx.post(url, data={"token": access}, headers={"Authorization": f"Bearer {access}"})
    body = seen.json()
    assert body["active"] is True and body["patient"] == "anna"
    assert body["client_id"] == token["client_id"] and body["scope"] == token["scope"]
    assert body["fhirUser"] == "Patient/anna" and "exp" in body and body["iss"] == base
    nobody = httpx.post(url, data={"token": access})
    assert nobody.status_code == 401
    revoked = httpx.post(
        f"{origin(base)}/oauth/revoke", data={"token": access, "client_id": token["client_id"]}
    )
    assert revoked.status_code == 200
    assert httpx.get(f"{base}/Patient/anna", headers=bearer(access)).status_code == 401
    client_id, key = backend_app(security)
    backend = backend_token(base, client_id, key).json()["access_token"]
    after = httpx.post(url, data={"token": access}, headers={"Authorization": f"Bearer {backend}"})
    assert after.json() == {"active": False}
    refresh = httpx.post(
        f"{origin(base)}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": token["client_id"],
            "refresh_token": token["refresh_token"],
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_dynamic_registration_is_for_administrators(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    account(security, "beheer", "admin", None)
    admin_app = public_app(security, scope="openid user/*.rs")
    admin = login(base, security, "beheer", scope="openid user/*.rs", client_id=admin_app)
    patient = login(base, security, "anna")
    metadata = {
        "client_name": "Huisartsensysteem",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": "system/CarePlan.rs",
        "jwks": {
            "keys": [ECKey.generate_key("P-384", parameters={"kid": "k"}).as_dict(private=False)]
        },
        "organization_identifier": "http://fhir.nl/fhir/NamingSystem/agb|01234567",
    }
    url = f"{origin(base)}/oauth/register"
    denied = httpx.post(
        url, json=metadata, headers={"Authorization": f"Bearer {patient['access_token']}"}
    )
    assert denied.status_code == 403
    assert httpx.post(url, json=metadata).status_code == 401
    made = httpx.post(
        url, json=metadata, headers={"Authorization": f"Bearer {admin['access_token']}"}
    )
    assert made.status_code == 201, made.text
    assert security.store.app(made.json()["client_id"]).kind == "backend"
    broken = httpx.post(
        url,
        json={**metadata, "scope": "everything"},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_client_metadata"
    typed = httpx.post(
        url,
        json={**metadata, "client_name": 5, "redirect_uris": "http://x"},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert typed.status_code == 400 and typed.json()["error"] == "invalid_client_metadata"
    not_json = httpx.post(
        url, content=b"{", headers={"Authorization": f"Bearer {admin['access_token']}"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_client_metadata"


def test_token_endpoint_bad_input_is_oauth_error_json(secure: dict[str, Any]) -> None:
    base = secure["base"]
    url = f"{origin(base)}/oauth/token"
    assert (
        httpx.post(url, data={"grant_type": "password"}).json()["error"] == "unsupported_grant_type"
    )
    as_json = httpx.post(url, json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    twice = httpx.post(
        url,
        content="grant_type=a&grant_type=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert twice.json()["error"] == "invalid_request"


def test_the_smart_python_client_fhirclient_launches_and_reads(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    from fhirclient import client as smart_client

    base, security = secure["base"], secure["security"]
    _patient(client)
    account(security, "anna", "patient", "Patient/anna")
    scope = "launch/patient patient/*.rs"
    client_id = public_app(security, scope=scope)
    smart = smart_client.FHIRClient(
        settings={"app_id": client_id, "api_base": base, "redirect_uri": REDIRECT, "scope": scope}
    )
    page = httpx.get(smart.authorize_url)
    assert page.status_code == 200, page.text
    answer = submit_login(base, page, "anna", PASSWORD, scope.split())
    assert answer.status_code == 302
    smart.handle_callback(answer.headers["location"])
    assert smart.patient_id == "anna"
    assert smart.patient.name[0].family == "Jansen"


def test_concurrent_assertions_never_read_each_others_jku(secure: dict[str, Any]) -> None:
    """An assertion's jku is that request's own: token requests run in a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    security, base = secure["security"], secure["base"]
    honest, honest_key = backend_app(security)
    forger, forger_key = backend_app(security)

    def ask(i: int) -> tuple[str, int]:
        if i % 2:
            jku = "https://attacker.example/jwks"  # not the registered JWKS URL: refused
            return "forger", backend_token(base, forger, forger_key, jku=jku).status_code
        return "honest", backend_token(base, honest, honest_key).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ask, range(60)))
    assert {code for who, code in results if who == "honest"} == {200}
    assert {code for who, code in results if who == "forger"} == {401}
