"""A small SMART client for the README walkthrough: keys, backend tokens, a client's login.

    python scripts/smart_client.py keys gp                 # gp-private.json, gp-jwks.json
    python scripts/smart_client.py backend-token BASE CLIENT_ID gp-private.json SCOPE
    python scripts/smart_client.py login-token BASE CLIENT_ID USERNAME SCOPE  # asks password

Each prints only the access token, so the shell can keep it in a variable.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import re
import secrets
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

REDIRECT = "http://127.0.0.1:9/callback"


def _origin(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def keys(name: str) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex}, private=True)
    Path(f"{name}-private.json").write_text(json.dumps(key.as_dict(private=True)))
    Path(f"{name}-jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    print(f"{name}-jwks.json")


def backend_token(base: str, client_id: str, key_file: str, scope: str) -> None:
    key = RSAKey.import_key(json.loads(Path(key_file).read_text()))
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{_origin(base)}/oauth/token",
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "RS384", "kid": key.kid}, claims, key, algorithms=["RS384"])
    response = httpx.post(
        f"{_origin(base)}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    response.raise_for_status()
    print(response.json()["access_token"])


def patient_token(base: str, client_id: str, username: str, scope: str) -> None:
    """The authorization-code flow with PKCE, filling in the login form as a browser would."""
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    page = httpx.get(
        f"{_origin(base)}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "walkthrough",
            "aud": base,
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        },
    )
    page.raise_for_status()
    sealed = re.search(r"name='request' value='([^']+)'", page.text)
    if sealed is None:
        sys.exit("no login form")
    form = [
        ("request", sealed.group(1)),
        ("username", username),
        ("password", password),
        ("decision", "approve"),
        *(("scope", s) for s in scope.split()),
    ]
    answer = httpx.post(
        f"{_origin(base)}/oauth/authorize",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    if answer.status_code != 302:
        sys.exit("login failed")
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    token = httpx.post(
        f"{_origin(base)}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    token.raise_for_status()
    print(token.json()["access_token"])


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    commands = {"keys": keys, "backend-token": backend_token, "login-token": patient_token}
    if command not in commands:
        sys.exit(__doc__)
    commands[command](*args)
