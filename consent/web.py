"""Small outgoing HTTP calls of the authorization server: JSON from other servers.

Used for an app's JWKS by URL and for an external OpenID Connect provider. Each call is
https (plain http only to this machine), bounded in time and size, and answers JSON
objects only; every failure is a :class:`Unreachable` with a message fit to show.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["Unreachable", "get_json", "is_local", "post_form"]

LIMIT = 256 * 1024
TIMEOUT = 5.0


class Unreachable(Exception):
    """The other server could not be asked, or did not answer usable JSON."""


def is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _check(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" and is_local(url)):
        raise Unreachable(f"{url} must use https")


def _json_object(data: bytes) -> dict[str, Any]:
    if len(data) > LIMIT:
        raise Unreachable("The answer is too large")
    try:
        loaded = json.loads(data)
    except ValueError as error:
        raise Unreachable("The answer is not JSON") from error
    if not isinstance(loaded, dict):
        raise Unreachable("The answer is not a JSON object")
    return loaded


def get_json(url: str) -> dict[str, Any]:
    """The JSON object at ``url``."""
    _check(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return _json_object(response.read(LIMIT + 1))
    except urllib.error.HTTPError as error:
        error.close()
        raise Unreachable(f"{url} answers {error.code}") from None
    except OSError as error:
        raise Unreachable(f"{url} cannot be read") from error


def post_form(
    url: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST an urlencoded form; (status, JSON object), also for 4xx answers with JSON."""
    _check(url)
    request = urllib.request.Request(  # noqa: S310 (scheme checked)
        url,
        data=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            **(headers or {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, _json_object(response.read(LIMIT + 1))
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _json_object(error.read(LIMIT + 1))
    except OSError as error:
        raise Unreachable(f"{url} cannot be reached") from error
