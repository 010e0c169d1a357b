"""Discovery: SMART configuration (SMART App Launch 2.2 section 2.1), OpenID configuration,
the JWKS."""

from __future__ import annotations

from typing import Any

from consent.oauth.common import (
    ASSERTION_ALGORITHMS,
)
from consent.oauth.state import ServerState
from consent.tokens import ID_TOKEN_ALGORITHM

__all__ = ["Discovery"]


class Discovery(ServerState):
    """The documents a client reads before anything else."""

    def smart_configuration(self) -> dict[str, Any]:
        """``.well-known/smart-configuration``: every REQUIRED and RECOMMENDED field."""
        return {
            "issuer": self.fhir_base,
            "jwks_uri": f"{self.oauth_base}/jwks",
            "authorization_endpoint": f"{self.oauth_base}/authorize",
            "token_endpoint": self.token_endpoint,
            "introspection_endpoint": f"{self.oauth_base}/introspect",
            "revocation_endpoint": f"{self.oauth_base}/revoke",
            "registration_endpoint": f"{self.oauth_base}/register",
            "management_endpoint": f"{self.oauth_base}/manage",
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "private_key_jwt",
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": [
                "openid",
                "fhirUser",
                "launch/patient",
                "offline_access",
                "online_access",
                "patient/*.rs",
                "patient/*.cruds",
                "user/*.rs",
                "user/*.cruds",
                "system/*.rs",
                "patient/*.read",
                "patient/*.write",
                "user/*.read",
                "system/*.read",
            ],
            "capabilities": [
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "context-standalone-patient",
                "permission-patient",
                "permission-user",
                "permission-v1",
                "permission-v2",
                "permission-offline",
                "permission-online",
                "sso-openid-connect",
            ],
        }

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.fhir_base,
            "authorization_endpoint": f"{self.oauth_base}/authorize",
            "token_endpoint": self.token_endpoint,
            "jwks_uri": f"{self.oauth_base}/jwks",
            "registration_endpoint": f"{self.oauth_base}/register",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
            "scopes_supported": ["openid", "fhirUser", "profile", "offline_access"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }

    def jwks(self) -> dict[str, Any]:
        return self.tokens.ring.public_jwks()
