"""The portal's way into the dossier: the gateway's public HTTP API, with the person's token.

Each call goes through the whole gateway app (its middleware, token check, consent filter,
access log) in this process, over httpx's ASGI transport: the same requests another app
would send over the network, without the network. The browser's address is passed on, so
the access log names where the person really was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

__all__ = ["Api", "ApiError", "TokenRefused"]

Query = list[tuple[str, str | int | float | bool | None]]

_TIMEOUT = 30.0
_MAX_PAGES = 20


class ApiError(Exception):
    """The API answered an error the page cannot show data for."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the API answered {status}")
        self.status = status


class TokenRefused(ApiError):
    """The token is not (or no longer) accepted: the person logs in again."""

    def __init__(self) -> None:
        super().__init__(401)


class Api:
    """Calls of one portal request: FHIR under ``fhir_base``, OAuth under ``oauth_base``."""

    def __init__(self, app: Any, fhir_base: str, oauth_base: str, address: str | None) -> None:
        parts = urlsplit(fhir_base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.fhir_base = fhir_base.rstrip("/")
        self.oauth_base = oauth_base.rstrip("/")
        self.token = ""
        transport = httpx.ASGITransport(app=app, client=(address or "127.0.0.1", 0))
        self._http = httpx.AsyncClient(
            transport=transport, base_url=self.origin, timeout=_TIMEOUT, follow_redirects=False
        )

    async def close(self) -> None:
        await self._http.aclose()

    # -- OAuth ----------------------------------------------------------------------------

    async def token_request(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST the token endpoint: (status, the JSON object answered)."""
        response = await self._http.post(f"{self.oauth_base}/token", data=dict(form))
        return response.status_code, _object(response.content)

    async def revoke(self, token: str, client_id: str) -> None:
        await self._http.post(
            f"{self.oauth_base}/revoke", data={"token": token, "client_id": client_id}
        )

    async def authorizations(self) -> list[dict[str, Any]]:
        response = await self._http.get(f"{self.oauth_base}/authorizations", headers=self._auth())
        self._check(response)
        found = _object(response.content).get("authorizations", [])
        return [a for a in found if isinstance(a, dict)]

    async def withdraw_authorization(self, authorization_id: str) -> bool:
        response = await self._http.delete(
            f"{self.oauth_base}/authorizations/{authorization_id}", headers=self._auth()
        )
        if response.status_code == 404:
            return False
        self._check(response)
        return True

    # -- FHIR -----------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"}

    def _check(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            raise TokenRefused
        if response.status_code >= 400:
            raise ApiError(response.status_code)

    async def read(self, reference: str) -> dict[str, Any] | None:
        """The resource, or None when it is not there (or not for this token: 404, 410)."""
        response = await self._http.get(f"{self.fhir_base}/{reference}", headers=self._auth())
        if response.status_code in (403, 404, 410):
            return None
        self._check(response)
        return _object(response.content)

    async def get(self, path: str, params: Query | None = None) -> dict[str, Any]:
        response = await self._http.get(
            f"{self.fhir_base}/{path}", params=params or [], headers=self._auth()
        )
        self._check(response)
        return _object(response.content)

    async def search(
        self, resource_type: str, params: list[tuple[str, str]], *, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Every match (following the next links) up to ``limit``; included ones too."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.fhir_base}/{resource_type}"
        query: Query | None = list(params)
        for _ in range(_MAX_PAGES):
            if url is None or len(found) >= limit:
                break
            response = await self._http.get(url, params=query, headers=self._auth())
            self._check(response)
            bundle = _object(response.content)
            found.extend(
                e["resource"]
                for e in bundle.get("entry", [])
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            )
            url = next(
                (
                    str(link.get("url"))
                    for link in bundle.get("link", [])
                    if isinstance(link, dict) and link.get("relation") == "next"
                ),
                None,
            )
            query = None  # a next link carries its own query
        return found[:limit]

    async def write(
        self, method: str, path: str, resource: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST or PUT a resource: (status, the resource or OperationOutcome answered)."""
        headers = {**self._auth(), "Content-Type": "application/fhir+json"}
        response = await self._http.request(
            method, f"{self.fhir_base}/{path}", content=orjson.dumps(resource), headers=headers
        )
        if response.status_code == 401:
            raise TokenRefused
        return response.status_code, _object(response.content)


def _object(content: bytes) -> dict[str, Any]:
    try:
        found = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}
