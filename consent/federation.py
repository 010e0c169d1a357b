"""Logging in through an external OpenID Connect provider (a DigiD broker, say).

The gateway is then a relying party of that provider, configured by issuer, client id and
secret: it discovers the provider's endpoints (``{issuer}/.well-known/openid-configuration``),
sends the person there with PKCE (S256) and a nonce, exchanges the code with its client
secret (``client_secret_basic``), and accepts the ID token only when its signature checks
against the provider's published keys (an asymmetric algorithm the provider announces;
never ``none`` or HMAC), ``iss`` is the issuer, ``aud`` holds our client id, it has not
expired, and its ``nonce`` is the one this browser was given.

What the provider says about the person is one claim (``sub`` by default, or a BSN
claim); :class:`Identity` carries it, and the gateway decides which account that is. No
network is touched until the first login through the provider, so the gateway starts
when the provider is down and says so only to the people who try it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consent.secrets import digest
from consent.web import Unreachable, get_json, post_form

__all__ = ["FederationError", "Identity", "Provider", "ProviderConfig", "external_subject"]

ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "ES256", "ES384")
LINK_MODES = ("account", "bsn")
_METADATA_LIFETIME = 3600.0
_LEEWAY = 60


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """The configuration of the one external provider a gateway may use."""

    issuer: str
    client_id: str
    client_secret: str
    name: str = "OpenID Connect"  # shown on the login page: "Log in with DigiD"
    scope: str = "openid"
    claim: str = "sub"  # the claim that names the person
    link: str = "account"  # account: a linked login; bsn: the claim is the client's BSN

    def __post_init__(self) -> None:
        if self.link not in LINK_MODES:
            raise ValueError(f"link is one of {', '.join(LINK_MODES)}")
        if "openid" not in self.scope.split():
            raise ValueError("the scope must include openid")
        if not (self.issuer and self.client_id and self.client_secret):
            raise ValueError("an external provider needs issuer, client id and client secret")


class FederationError(Exception):
    """The login through the provider failed; ``status`` and a message fit to show."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says the person is: the configured claim's value, and all claims."""

    issuer: str
    subject: str
    claims: dict[str, Any]


class Provider:
    """The relying-party side of one OpenID Connect provider."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        now: Callable[[], int] | None = None,
        get: Callable[[str], dict[str, Any]] = get_json,
        post: Callable[..., tuple[int, dict[str, Any]]] = post_form,
    ) -> None:
        self.config = config
        self.issuer = config.issuer.rstrip("/")
        self._now = now or (lambda: int(time.time()))
        self._get = get
        self._post = post
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._fetched = 0.0
        self._keys: KeySet | None = None

    # -- discovery ---------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked, and cached for an hour."""
        with self._lock:
            fresh = time.monotonic() - self._fetched < _METADATA_LIFETIME
            if self._metadata is not None and fresh:
                return self._metadata
        try:
            found = self._get(f"{self.issuer}/.well-known/openid-configuration")
        except Unreachable as error:
            raise self._down() from error
        if str(found.get("issuer", "")).rstrip("/") != self.issuer:
            raise FederationError(502, f"{self.config.name} announces another issuer")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(found.get(name), str):
                raise FederationError(502, f"{self.config.name} does not announce its {name}")
        with self._lock:
            self._metadata, self._fetched = found, time.monotonic()
        return found

    def origins(self) -> list[str]:
        """Where the login page may send the browser (for its Content-Security-Policy)."""
        urls = [self.issuer]
        if self._metadata is not None:
            urls.append(str(self._metadata["authorization_endpoint"]))
        return sorted({_origin(url) for url in urls})

    def _down(self) -> FederationError:
        return FederationError(
            502, f"{self.config.name} cannot be reached now; try again in a moment"
        )

    # -- the login ---------------------------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser: the provider's login, with PKCE and a nonce."""
        endpoint = str(self.metadata()["authorization_endpoint"])
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.config.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        sep = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{sep}{urlencode(query)}"

    def identify(self, *, code: str, redirect_uri: str, verifier: str, nonce: str) -> Identity:
        """Exchange the code, check the ID token, and say who logged in."""
        endpoint = str(self.metadata()["token_endpoint"])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        try:
            status, body = self._post(endpoint, form, {"Authorization": self._basic()})
        except Unreachable as error:
            raise self._down() from error
        token = body.get("id_token")
        if status != 200 or not isinstance(token, str):
            reason = body.get("error") if isinstance(body.get("error"), str) else "no ID token"
            raise FederationError(502, f"{self.config.name} did not complete the login ({reason})")
        claims = self.verify_id_token(token, nonce=nonce)
        subject = claims.get(self.config.claim)
        if not isinstance(subject, str) or not subject:
            raise FederationError(
                502, f"{self.config.name} did not say who logged in ({self.config.claim})"
            )
        return Identity(self.issuer, subject, claims)

    def _basic(self) -> str:
        # RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding
        pair = urlencode({"": self.config.client_id})[1:] + ":"
        pair += urlencode({"": self.config.client_secret})[1:]
        return "Basic " + base64.b64encode(pair.encode()).decode()

    # -- the ID token ------------------------------------------------------------------------

    def verify_id_token(self, token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of an ID token this provider issued for us and this login."""
        invalid = FederationError(502, f"{self.config.name} sent an ID token we cannot accept")
        if token.count(".") != 2 or len(token) > 16384:
            raise invalid
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise invalid from None
        algorithm = header.get("alg")
        announced = self.metadata().get("id_token_signing_alg_values_supported", ["RS256"])
        if algorithm not in ID_TOKEN_ALGORITHMS or algorithm not in announced:
            raise invalid
        keys = self._key_set(header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=[algorithm])
        except (JoseError, ValueError, TypeError, KeyError):
            raise invalid from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            now=self._now,
            leeway=_LEEWAY,
            iss={"essential": True, "value": self.issuer},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError:
            raise invalid from None
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.config.client_id not in audiences:
            raise invalid
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise invalid
        return claims

    def _key_set(self, kid: Any) -> KeySet:
        """The provider's keys; fetched again once when a token names a key we lack."""
        keys = self._keys
        if keys is None or not any(key.kid == kid for key in keys.keys):
            uri = str(self.metadata()["jwks_uri"])
            try:
                keys = KeySet.import_key_set(self._get(uri))  # type: ignore[arg-type]
            except Unreachable as error:
                raise self._down() from error
            except (JoseError, ValueError, TypeError, KeyError) as error:
                raise FederationError(
                    502, f"{self.config.name} publishes keys we cannot read"
                ) from error
            if any(key.is_private for key in keys.keys):
                raise FederationError(502, f"{self.config.name} publishes private keys")
            self._keys = keys
        return keys


def external_subject(issuer: str, subject: str) -> str:
    """How a login is linked to a person at a provider: a digest, so no BSN is kept here."""
    return digest(f"{issuer.rstrip('/')}|{subject}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
