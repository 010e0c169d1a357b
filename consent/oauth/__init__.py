"""The SMART on FHIR authorization server, free of any web framework, one module per RFC.

The gateway's HTTP edge turns requests into the plain arguments of these methods (the form,
the Authorization header) and renders what they return. The endpoints:

- :mod:`~consent.oauth.discovery`: SMART and OpenID configuration, the JWKS;
- :mod:`~consent.oauth.authorize`: authorization code with PKCE (S256 only) for client-facing
  apps; the person logs in and approves, possibly less than the app asked for;
- :mod:`~consent.oauth.token`: ``authorization_code``, ``refresh_token`` (rotated on use; a
  reused refresh token revokes its whole authorization), ``client_credentials`` with a
  private_key_jwt assertion (SMART Backend Services, RS384/ES384);
- :mod:`~consent.oauth.clientauth`: client authentication (RFC 6749 2.3, RFC 7523);
- :mod:`~consent.oauth.introspection`: introspection (RFC 7662), revocation (RFC 7009);
- :mod:`~consent.oauth.registration`: registration (RFC 7591, admins only);
- :mod:`~consent.oauth.sessions`: external OpenID Connect login and managing one's apps.

Errors are RFC 6749 error JSON (authlib's error classes), never a stack trace.
"""

from __future__ import annotations

from consent.oauth.common import (
    ASSERTION_TYPE,
    MANAGE_LIFETIME,
    PENDING_LIFETIME,
    AuthorizeError,
    LoginFailed,
    OAuthResponse,
    Pending,
)
from consent.oauth.discovery import Discovery
from consent.oauth.introspection import Introspection
from consent.oauth.registration import Registration
from consent.oauth.sessions import Sessions
from consent.oauth.token import Tokens

__all__ = [
    "ASSERTION_TYPE",
    "MANAGE_LIFETIME",
    "PENDING_LIFETIME",
    "AuthorizationServer",
    "AuthorizeError",
    "LoginFailed",
    "OAuthResponse",
    "Pending",
]


class AuthorizationServer(Discovery, Sessions, Tokens, Introspection, Registration):
    """Issues, checks and revokes the gateway's tokens; one per gateway process."""
