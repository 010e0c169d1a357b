"""The portal's person over HTTP (conformance.portal), logging in with the tests' password."""

from __future__ import annotations

import httpx

from conformance.portal import PortalBrowser as _Browser
from conformance.portal import text_of
from tests.smart import PASSWORD

__all__ = ["PortalBrowser", "text_of"]


class PortalBrowser(_Browser):
    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return super().login(username, password)
