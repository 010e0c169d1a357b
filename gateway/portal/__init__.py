"""The client's own portal at ``/portal``: an app of the gateway that uses its public API only.

The portal is a SMART app like any other: it logs the person in through the gateway's own
``/oauth/authorize`` (authorization code with PKCE), keeps the tokens in an encrypted,
HttpOnly cookie of that browser (no server-side session: any gateway process serves it),
and reads and writes the dossier through the FHIR API with the person's own token, so
everything it shows passed that token's consent filter and is in the client's access log.
Its pages are server-rendered HTML without any script (docs/adr/0017).
"""

from gateway.portal.app import PortalWiring, portal_routes

__all__ = ["PortalWiring", "portal_routes"]
