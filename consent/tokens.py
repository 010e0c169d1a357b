"""Access tokens: short-lived JWTs signed by the gateway, with key rotation by ``kid``.

Every gateway process shares the signing keys through the database (many processes, one
PostgreSQL), so a token issued by one is verified by all. Verification checks the
signature against the published keys, the algorithm (ES256 only: ``alg=none`` and
algorithm confusion are refused before any key is touched), ``exp``, ``iat``, ``iss`` and
``aud`` (the FHIR base URL).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from consent.secrets import new_token
from mappings.core.clock import Clock

__all__ = [
    "ID_TOKEN_ALGORITHM",
    "SIGNING_ALGORITHM",
    "InvalidToken",
    "KeyRing",
    "TokenIssuer",
    "new_signing_keys",
]

SIGNING_ALGORITHM = "ES256"  # access tokens
ID_TOKEN_ALGORITHM = "RS256"  # noqa: S105 (an algorithm name) — ID tokens: the algorithm every OpenID Connect client knows


class InvalidToken(Exception):
    """The token is not one of ours, or no longer valid; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_signing_keys() -> list[dict[str, Any]]:
    """A fresh generation of private JWKs: P-256 for access tokens, RSA for ID tokens."""
    ec = ECKey.generate_key(
        "P-256",
        parameters={"kid": new_token(12), "use": "sig", "alg": SIGNING_ALGORITHM},
        private=True,
    )
    rsa = RSAKey.generate_key(
        2048,
        parameters={"kid": new_token(12), "use": "sig", "alg": ID_TOKEN_ALGORITHM},
        private=True,
    )
    return [dict(ec.as_dict(private=True)), dict(rsa.as_dict(private=True))]


def _import(jwk: dict[str, Any]) -> ECKey | RSAKey:
    return ECKey.import_key(jwk) if jwk.get("kty") == "EC" else RSAKey.import_key(jwk)


#: how often at most an unknown kid makes the ring be read again
RELOAD_INTERVAL = dt.timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The signing keys: the newest signs, all that are not retired still verify."""

    keys: tuple[dict[str, Any], ...]  # private JWKs, newest first

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")

    def signing(self, algorithm: str) -> ECKey | RSAKey:
        """The newest key for ``algorithm``."""
        for jwk in self.keys:
            if jwk.get("alg") == algorithm:
                return _import(jwk)
        raise ValueError(f"no key for {algorithm}")

    def verifying(self) -> KeySet:
        return KeySet([_import(k) for k in self.keys])

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [_import(k).as_dict(private=False) for k in self.keys]}


class TokenIssuer:
    """Signs and verifies the gateway's access tokens and ID tokens."""

    def __init__(
        self,
        ring: KeyRing,
        issuer: str,
        clock: Clock,
        reload: Callable[[], KeyRing] | None = None,
        reload_interval: dt.timedelta = RELOAD_INTERVAL,
    ) -> None:
        self.issuer = issuer
        self.clock = clock
        self._reload = reload
        self._reload_interval = reload_interval
        self._reloaded: dt.datetime | None = None
        self._lock = threading.Lock()
        self._use(ring)

    def _use(self, ring: KeyRing) -> None:
        self.ring = ring
        self._keys = ring.verifying()
        self._kids = {str(k["kid"]) for k in ring.keys}

    def _known(self, kid: Any) -> bool:
        """Whether ``kid`` is ours. A key rotated in by another process is found by reloading
        the ring, at most once per ``reload_interval``: a stream of tokens with made-up kids
        costs one database read per interval, not one each."""
        if kid in self._kids:
            return True
        if self._reload is None or not isinstance(kid, str):
            return False
        now = self.clock.now()
        with self._lock:
            due = self._reloaded is None or now - self._reloaded >= self._reload_interval
            if due:
                self._reloaded = now
        if due:
            self._use(self._reload())
        return kid in self._kids

    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        audience: str,
        lifetime: dt.timedelta,
        algorithm: str = SIGNING_ALGORITHM,
    ) -> str:
        """A signed JWT with ``claims`` plus iss, aud, iat, exp and a fresh jti."""
        now = self.now()
        body = {
            **claims,
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + int(lifetime.total_seconds()),
            "jti": claims.get("jti") or new_token(16),
        }
        key = self.ring.signing(algorithm)
        header = {"alg": algorithm, "kid": key.kid, "typ": "JWT"}
        return jwt.encode(header, body, key, algorithms=[algorithm])

    def verify(self, token: str, *, audience: str | Sequence[str]) -> dict[str, Any]:
        """The claims of a valid token; :class:`InvalidToken` otherwise."""
        if token.count(".") != 2 or len(token) > 8192:
            raise InvalidToken("not a signed JWT")
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise InvalidToken("malformed token") from None
        if header.get("alg") != SIGNING_ALGORITHM:  # alg=none, HS256 confusion, ID tokens
            raise InvalidToken("algorithm not accepted")
        if not self._known(header.get("kid")):
            raise InvalidToken("unknown signing key")
        try:
            decoded = jwt.decode(token, self._keys, algorithms=[SIGNING_ALGORITHM])
        except JoseError as error:
            raise InvalidToken(f"signature or header rejected ({error.error})") from None
        except (ValueError, TypeError, KeyError):
            raise InvalidToken("malformed token") from None
        audiences = [audience] if isinstance(audience, str) else list(audience)
        registry = jwt.JWTClaimsRegistry(
            now=self.now,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "values": audiences},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as error:
            raise InvalidToken(f"claims rejected ({error.error})") from None
        return dict(decoded.claims)
