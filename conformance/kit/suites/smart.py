"""``smart``: SMART App Launch 2.2 and Backend Services, as the server does them.

Backend checks need a backend app (``--client-id``, ``--key``: one or more private JWKs,
RS384 and/or ES384); launch checks need a public app (``--launch-client-id``,
``--redirect-uri``) and a client's login (``--patient-login``). The kit fills in the server's
login page as a browser would, and never follows a redirect to the app: it reads the code
from it.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey

from conformance import smart
from conformance.kit.model import SMART, Failed, Skipped, check, expect
from conformance.kit.session import PATIENT_SCOPE, Answer, Session

#: the checks join the catalogue when this module is imported; nothing is imported from it
__all__: list[str] = []

_BACKEND = f"{SMART}/backend-services.html"
_LAUNCH = f"{SMART}/app-launch.html"
_TOKEN_ERRORS = ("invalid_client", "invalid_grant", "invalid_request")


def _refused_at_token(answer: Answer, what: str) -> None:
    expect(answer.status in (400, 401), f"{what}: the token endpoint answered {answer.status}")
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    expect(error in _TOKEN_ERRORS, f"{what}: error is {error!r}, not an RFC 6749 error")


def _token_fields(body: Any, what: str) -> None:
    expect(isinstance(body, dict), f"{what}: the answer is not a JSON object")
    expect(body.get("access_token"), f"{what}: no access_token")
    expect(str(body.get("token_type", "")).lower() == "bearer", f"{what}: token_type is not Bearer")
    expect(isinstance(body.get("expires_in"), int), f"{what}: no expires_in")
    expect(body.get("scope"), f"{what}: no scope")


def _api_accepts(session: Session, token: str) -> int:
    return session.fhir("GET", "Patient?_count=1", token=token).status


# -- backend services -------------------------------------------------------------------


@check(
    "smart-backend-01",
    "A backend app gets a token with an RS384 client assertion",
    requirement="Servers SHALL support RS384 and ES384 for client assertions",
    link=f"{_BACKEND}#signature-verification",
    inputs="--client-id, an RS384 --key",
    asserts="200 with access_token, token_type bearer, expires_in, scope; the token works on "
    "the FHIR API",
)
def backend_rs384(session: Session) -> None:
    answer = session.backend_request(session.assertion(session.key("RS384")))
    expect(
        answer.status == 200, f"the token endpoint answered {answer.status}: {answer.text[:200]}"
    )
    _token_fields(answer.body, "the token response")
    status = _api_accepts(session, answer.body["access_token"])
    expect(status == 200, f"the FHIR API refused the new token ({status})")


@check(
    "smart-backend-02",
    "A backend app gets a token with an ES384 client assertion",
    requirement="Servers SHALL support RS384 and ES384 for client assertions",
    link=f"{_BACKEND}#signature-verification",
    inputs="--client-id, an ES384 --key",
    asserts="200 with an access token",
)
def backend_es384(session: Session) -> None:
    answer = session.backend_request(session.assertion(session.key("ES384")))
    expect(
        answer.status == 200, f"the token endpoint answered {answer.status}: {answer.text[:200]}"
    )
    _token_fields(answer.body, "the token response")


@check(
    "smart-backend-03",
    "A replayed client assertion (same jti) is refused",
    requirement="The server SHALL reject an assertion whose jti it has seen before",
    link=f"{_BACKEND}#authorization-server-obligations",
    inputs="--client-id, --key",
    asserts="the first use gets a token, the second 400/401 with an RFC 6749 error",
)
def backend_replay(session: Session) -> None:
    assertion = session.assertion(session.key(), jti=uuid.uuid4().hex)
    first = session.backend_request(assertion)
    expect(first.status == 200, f"the first use answered {first.status}")
    _refused_at_token(session.backend_request(assertion), "the replay")


@check(
    "smart-backend-04",
    "A client assertion that expires more than five minutes ahead is refused",
    requirement="exp SHALL be no more than five minutes in the future",
    link=f"{_BACKEND}#request-body",
    inputs="--client-id, --key",
    asserts="an assertion with exp 30 minutes ahead gets 400/401",
)
def backend_exp(session: Session) -> None:
    too_far = session.assertion(session.key(), exp_in=1800)
    _refused_at_token(session.backend_request(too_far), "exp 30 minutes ahead")


@check(
    "smart-backend-05",
    "A client assertion for another audience is refused",
    requirement="aud SHALL be the token endpoint",
    link=f"{_BACKEND}#authorization-server-obligations",
    inputs="--client-id, --key",
    asserts="an assertion with aud https://elsewhere.example/token gets 400/401",
)
def backend_audience(session: Session) -> None:
    other = session.assertion(session.key(), aud="https://elsewhere.example/token")
    _refused_at_token(session.backend_request(other), "another audience")


@check(
    "smart-backend-06",
    "A client assertion that has expired is refused",
    requirement="The server SHALL check exp",
    link=f"{_BACKEND}#authorization-server-obligations",
    inputs="--client-id, --key",
    asserts="an assertion that expired a minute ago gets 400/401",
)
def backend_expired(session: Session) -> None:
    expired = session.assertion(session.key(), exp_in=-60)
    _refused_at_token(session.backend_request(expired), "an expired assertion")


@check(
    "smart-backend-07",
    "A client assertion signed by another key is refused",
    requirement="The server SHALL verify the signature with the app's registered keys",
    link=f"{_BACKEND}#signature-verification",
    inputs="--client-id",
    asserts="an RS384 assertion under a fresh key (the kid of none registered) gets 400/401",
)
def backend_foreign_key(session: Session) -> None:
    session.key()  # needs a backend app at all
    _refused_at_token(
        session.backend_request(session.assertion(smart.new_key("RS384"))), "a foreign key"
    )


# -- tokens at the FHIR API ------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    try:
        header, payload, signature = token.split(".")
        decoded = [
            json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (header, payload)
        ]
    except ValueError:
        raise Skipped(
            "the server's access tokens are not JWTs: attacks on them do not apply"
        ) from None
    return decoded[0], decoded[1], signature


def _refused_at_api(session: Session, token: str, what: str) -> None:
    answer = session.fhir("GET", "Patient?_count=1", token=token)
    expect(answer.status == 401, f"{what}: the FHIR API answered {answer.status}")
    challenge = answer.headers.get("www-authenticate", "")
    expect("invalid_token" in challenge, f"{what}: WWW-Authenticate is {challenge!r}")


@check(
    "smart-token-01",
    "A token with alg none is refused",
    requirement="Access tokens are verified; an unsigned token is none",
    link=f"{SMART}/app-launch.html#step-5-access-protected-resources",
    inputs="a real access token (backend app)",
    asserts="the same claims with alg none and no signature get 401 invalid_token",
)
def token_alg_none(session: Session) -> None:
    header, payload, _ = _parts(session.backend_token())
    forged = f"{_b64({**header, 'alg': 'none'})}.{_b64(payload)}."
    _refused_at_api(session, forged, "alg none")


@check(
    "smart-token-02",
    "A token with a forged signature is refused",
    requirement="Access tokens are verified",
    link=f"{SMART}/app-launch.html#step-5-access-protected-resources",
    inputs="a real access token (backend app)",
    asserts="the same claims signed HS256 with the server's own public key as the secret "
    "(algorithm confusion) get 401 invalid_token",
)
def token_forged(session: Session) -> None:
    header, payload, _ = _parts(session.backend_token())
    jwks = session.request("GET", session.endpoint("jwks_uri")).text.encode()
    forged = jwt.encode(
        {"alg": "HS256", "kid": header.get("kid", "")},
        payload,
        OctKey.import_key(jwks),
        algorithms=["HS256"],
    )
    _refused_at_api(session, forged, "an HS256 signature with the public key")


@check(
    "smart-token-03",
    "An expired token is refused",
    requirement="Access tokens are verified, exp included",
    link=f"{SMART}/app-launch.html#step-5-access-protected-resources",
    inputs="a real access token (backend app)",
    asserts="the token with exp set an hour back (the signature kept) gets 401 invalid_token",
)
def token_expired(session: Session) -> None:
    header, payload, signature = _parts(session.backend_token())
    changed = {**payload, "exp": int(time.time()) - 3600}
    _refused_at_api(session, f"{_b64(header)}.{_b64(changed)}.{signature}", "an expired token")


@check(
    "smart-token-04",
    "A token for another audience is refused",
    requirement="A resource server accepts only tokens meant for it",
    link=f"{SMART}/app-launch.html#step-5-access-protected-resources",
    inputs="a real access token (backend app)",
    asserts="the token with aud changed (the signature kept) gets 401 invalid_token",
)
def token_audience(session: Session) -> None:
    header, payload, signature = _parts(session.backend_token())
    changed = {**payload, "aud": "https://elsewhere.example/fhir"}
    _refused_at_api(session, f"{_b64(header)}.{_b64(changed)}.{signature}", "another aud")


# -- the standalone launch --------------------------------------------------------------


@check(
    "smart-launch-01",
    "Standalone launch with PKCE: a patient token with the patient in context",
    requirement="The authorization code flow with PKCE S256 issues a token with patient",
    link=f"{_LAUNCH}#obtain-authorization-code",
    inputs="--launch-client-id, --redirect-uri, --patient-login",
    asserts="the login redirects with a code and our state; the token response has "
    "access_token, token_type, expires_in, scope, patient, id_token, refresh_token; the "
    "same code a second time is refused",
)
def launch(session: Session) -> None:
    verifier, challenge = smart.pkce()
    state = uuid.uuid4().hex
    code, echoed = session.code_of(
        session.authorize(PATIENT_SCOPE, challenge=challenge, state=state)
    )
    expect(echoed == state, f"state came back as {echoed!r}")
    answer = session.exchange(code, verifier)
    expect(answer.status == 200, f"the code exchange answered {answer.status}")
    _token_fields(answer.body, "the token response")
    for name in ("patient", "id_token", "refresh_token"):
        expect(answer.body.get(name), f"the token response has no {name}")
    again = session.exchange(code, verifier)  # (a server may revoke what the code gave)
    expect(again.status in (400, 401), f"the same code was accepted twice ({again.status})")


@check(
    "smart-launch-02",
    "PKCE plain is refused",
    requirement="Servers SHALL NOT support the plain method",
    link=f"{_LAUNCH}#considerations-for-pkce-support",
    inputs="--launch-client-id, --redirect-uri",
    asserts="an authorize request with code_challenge_method plain does not lead to a code",
)
def launch_plain(session: Session) -> None:
    verifier, _ = smart.pkce()
    answer = session.authorize(PATIENT_SCOPE, challenge=verifier, method="plain")
    location = answer.headers.get("location", "")
    expect("code=" not in location, "a code was issued for PKCE plain")


@check(
    "smart-launch-03",
    "A redirect URI that is not registered gets no redirect",
    requirement="The server SHALL NOT redirect to an unregistered redirect_uri",
    link=f"{_LAUNCH}#request-authorization-code",
    inputs="--launch-client-id, --redirect-uri",
    asserts="the authorize request with https://attacker.example/cb answers 400, no redirect",
)
def launch_redirect(session: Session) -> None:
    _, challenge = smart.pkce()
    answer = session.authorize(
        PATIENT_SCOPE, challenge=challenge, redirect_uri="https://attacker.example/cb"
    )
    expect(answer.status == 400, f"the authorize request answered {answer.status}")
    expect("attacker.example" not in answer.headers.get("location", ""), "it redirected there")


@check(
    "smart-launch-04",
    "The person may grant less than the app asked",
    requirement="The granted scope may be narrower than the requested; the token response "
    "says which",
    link=f"{_LAUNCH}#response-5",
    inputs="--launch-client-id, --redirect-uri, --patient-login",
    asserts="unticking offline_access and patient/*.cruds for patient/Observation.rs gives a "
    "token whose scope has neither and no refresh_token",
)
def launch_downgrade(session: Session) -> None:
    verifier, challenge = smart.pkce()
    granted = ["openid", "fhirUser", "launch/patient", "patient/Observation.rs"]
    code, _ = session.code_of(session.authorize(PATIENT_SCOPE, challenge=challenge, grant=granted))
    answer = session.exchange(code, verifier)
    expect(answer.status == 200, f"the code exchange answered {answer.status}")
    scopes = str(answer.body.get("scope", "")).split()
    expect("offline_access" not in scopes, f"offline_access was granted anyway: {scopes}")
    expect("patient/*.cruds" not in scopes, f"patient/*.cruds was granted anyway: {scopes}")
    expect("refresh_token" not in answer.body, "a refresh token without offline_access")


@check(
    "smart-launch-05",
    "A wrong code_verifier is refused",
    requirement="The token endpoint checks the PKCE verifier",
    link=f"{_LAUNCH}#obtain-access-token",
    inputs="--launch-client-id, --redirect-uri, --patient-login",
    asserts="exchanging a good code with another verifier answers 400 invalid_grant",
)
def launch_verifier(session: Session) -> None:
    _, challenge = smart.pkce()
    code, _ = session.code_of(session.authorize(PATIENT_SCOPE, challenge=challenge))
    other, _ = smart.pkce()
    _refused_at_token(session.exchange(code, other), "another verifier")


@check(
    "smart-refresh-01",
    "A refresh token rotates, and a reused one is refused",
    requirement="Refresh tokens may be rotated; the old one then no longer works",
    link=f"{_LAUNCH}#step-7-app-uses-a-refresh-token-to-obtain-a-new-access-token",
    inputs="--launch-client-id, --redirect-uri, --patient-login",
    asserts="a refresh gives a new access and refresh token; the first refresh token used "
    "again answers 400",
)
def refresh(session: Session) -> None:
    client_id, _ = session.launch_client()
    verifier, challenge = smart.pkce()
    code, _ = session.code_of(session.authorize(PATIENT_SCOPE, challenge=challenge))
    first = session.exchange(code, verifier).body["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": first, "client_id": client_id}
    url = session.endpoint("token_endpoint")
    answer = session.request("POST", url, data=form, headers={"Accept": "application/json"})
    expect(answer.status == 200, f"the refresh answered {answer.status}")
    _token_fields(answer.body, "the refreshed token response")
    expect(
        answer.body.get("refresh_token") not in (None, first), "the refresh token did not rotate"
    )
    reused = session.request("POST", url, data=form, headers={"Accept": "application/json"})
    _refused_at_token(reused, "the used refresh token")


@check(
    "smart-introspect-01",
    "Introspection says which tokens are active",
    requirement="RFC 7662 token introspection",
    link=f"{SMART}/token-introspection.html",
    inputs="--patient-login (a token to look at and to ask with)",
    asserts="a live token is active with its scope and patient; garbage is active false",
)
def introspect(session: Session) -> None:
    token, patient = session.patient()
    url = session.endpoint("introspection_endpoint")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    live = session.request("POST", url, data={"token": token}, headers=headers)
    expect(live.status == 200, f"introspection answered {live.status}")
    expect(live.body.get("active") is True, "a live token is not active")
    expect(live.body.get("scope"), "no scope in the introspection")
    expect(live.body.get("patient") in (None, patient), "another patient in the introspection")
    dead = session.request("POST", url, data={"token": "not-a-token"}, headers=headers)
    expect(dead.status == 200 and dead.body.get("active") is False, "garbage is not inactive")


@check(
    "smart-revoke-01",
    "A revoked token stops working at once",
    requirement="RFC 7009 token revocation",
    link="https://www.rfc-editor.org/rfc/rfc7009",
    inputs="--launch-client-id, --redirect-uri, --patient-login",
    asserts="after revoking a fresh access token, the FHIR API answers it 401",
)
def revoke(session: Session) -> None:
    client_id, _ = session.launch_client()
    verifier, challenge = smart.pkce()
    code, _ = session.code_of(session.authorize(PATIENT_SCOPE, challenge=challenge))
    token = session.exchange(code, verifier).body["access_token"]
    expect(_api_accepts(session, token) == 200, "a fresh token does not work")
    answer = session.request(
        "POST",
        session.endpoint("revocation_endpoint"),
        data={"token": token, "client_id": client_id},
        headers={"Accept": "application/json"},
    )
    expect(answer.status == 200, f"revocation answered {answer.status}")
    status = session.fhir("GET", "Patient?_count=1", token=token).status
    if status != 401:
        raise Failed(f"the revoked token still works ({status})")
