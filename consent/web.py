"""Small outgoing HTTP calls of the authorization server: JSON from other servers.

Used for an app's JWKS by URL and for an external OpenID Connect provider. Each call is
https (plain http only to this machine's loopback, for tests), never follows a redirect (a
redirect could lead from https to http, or to another host than the one configured),
is bounded in time and size, and answers JSON objects only; every failure is an
:class:`Unreachable` with a message fit to show.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["LIMIT", "TIMEOUT", "Unreachable", "get_json", "is_local", "post_form"]

LIMIT = 256 * 1024
TIMEOUT = 5.0


class Unreachable(Exception):
    """The other server could not be asked, or did not answer usable JSON."""


def is_local(url: str) -> bool:
    """Whether ``url`` names this machine's loopback (where plain http is allowed)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(url: str) -> None:
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        raise Unreachable("Not a URL") from None
    if scheme != "https" and not (scheme == "http" and is_local(url)):
        raise Unreachable(f"{url[:200]} must use https")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(data)
    except ValueError as error:
        raise Unreachable("The answer is not JSON") from error
    if not isinstance(loaded, dict):
        raise Unreachable("The answer is not a JSON object")
    return loaded


def _exchange(request: httpx.Request) -> tuple[int, bytes]:
    """(status, body) of one request: no redirects, at most :data:`LIMIT` bytes."""
    url = str(request.url)[:200]
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
            response = client.send(request, stream=True)
            try:
                if response.is_redirect:
                    raise Unreachable(f"{url} answers a redirect, which is not followed")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > LIMIT:
                        raise Unreachable(f"The answer of {url} is too large")
            finally:
                response.close()
    except httpx.TimeoutException:
        raise Unreachable(f"{url} did not answer in time") from None
    except httpx.HTTPError:
        raise Unreachable(f"{url} cannot be reached") from None
    return response.status_code, bytes(body)


def get_json(url: str) -> dict[str, Any]:
    """The JSON object at ``url`` (a 2xx answer)."""
    _check(url)
    status, body = _exchange(httpx.Request("GET", url, headers={"Accept": "application/json"}))
    if not 200 <= status < 300:
        raise Unreachable(f"{url[:200]} answers {status}")
    return _json_object(body)


def post_form(
    url: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST an urlencoded form; (status, JSON object), also for 4xx answers with JSON."""
    _check(url)
    request = httpx.Request(
        "POST", url, data=form, headers={"Accept": "application/json", **(headers or {})}
    )
    status, body = _exchange(request)
    return status, _json_object(body)
