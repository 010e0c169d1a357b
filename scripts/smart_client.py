"""A small command over the project's SMART client (conformance.smart), for the README:

    python scripts/smart_client.py keys DIR gp [RS384 ES384]  # DIR/gp-private.json, -jwks.json
    python scripts/smart_client.py backend-token BASE CLIENT_ID DIR/gp-private.json SCOPE
    python scripts/smart_client.py login-token BASE CLIENT_ID USERNAME SCOPE  # reads password
    python scripts/smart_client.py portal ORIGIN USERNAME PATH...  # reads password; page texts

Each prints only what the shell needs (the JWKS path, or the access token). Keep private
keys out of the repository: write them to a temporary folder (``mktemp -d``).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from joserfc.jwk import RSAKey

from conformance import smart
from conformance.portal import PortalBrowser, text_of


def keys(folder: str, name: str, *algorithms: str) -> None:
    """DIR/NAME-private.json (one private JWK, or a JWKS of several: RS384, ES384) and
    DIR/NAME-jwks.json (the public JWKS to register); prints the latter's path."""
    made = [smart.new_key(a) for a in (algorithms or ("RS384",))]
    target = Path(folder)
    private = target / f"{name}-private.json"
    secret = (
        made[0].as_dict(private=True)
        if len(made) == 1
        else {"keys": [k.as_dict(private=True) for k in made]}
    )
    private.write_text(json.dumps(secret))
    private.chmod(0o600)
    public = target / f"{name}-jwks.json"
    public.write_text(json.dumps({"keys": [k.as_dict(private=False) for k in made]}))
    print(public)


def backend_token(base: str, client_id: str, key_file: str, scope: str) -> None:
    key = RSAKey.import_key(json.loads(Path(key_file).read_text()))
    response = smart.backend_token(base, client_id, key, scope)
    if response.status_code != 200:
        sys.exit(f"no token: {response.text}")
    print(response.json()["access_token"])


def _password() -> str:
    return getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().strip()


def portal(origin: str, username: str, *paths: str) -> None:
    """Log in to the portal as a person, and print the text of each page (its main part)."""
    browser = PortalBrowser(f"{origin.rstrip('/')}/fhir")
    try:
        landed = browser.login(username, _password())
        if landed.status_code != 303:
            sys.exit(f"login failed: {text_of(landed.text)[:200]}")
        for path in paths:
            page = browser.follow(browser.get(path))
            main = page.text.split("<main", 1)[-1]
            print(f"== {path} ({page.status_code})\n{text_of('<main' + main)}")
    finally:
        browser.close()


def login_token(base: str, client_id: str, username: str, scope: str) -> None:
    """The authorization-code flow with PKCE, filling in the login form as a browser would."""
    password = _password()
    verifier, challenge = smart.pkce()
    answer = smart.authorize(
        base, client_id, scope, challenge, username=username, password=password
    )
    try:
        code, _ = smart.code_from(answer)
    except ValueError:
        sys.exit("login failed")
    token = smart.exchange(base, client_id, code, verifier)
    if token.status_code != 200:
        sys.exit(f"no token: {token.text}")
    print(token.json()["access_token"])


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    commands = {
        "keys": keys,
        "backend-token": backend_token,
        "login-token": login_token,
        "portal": portal,
    }
    if command not in commands:
        sys.exit(__doc__)
    commands[command](*args)
