"""CORS for SMART apps that run in a browser on another origin (Fetch standard, CORS protocol).

An origin may call the FHIR API and the token, introspection and revocation endpoints when
it is the origin of a registered app's redirect URI, or is configured
(``EIGENDOSSIER_CORS_ORIGINS``). The answer names that one origin, never ``*``, and never
allows credentials: the API takes bearer tokens, not cookies. A preflight (``OPTIONS`` with
``Access-Control-Request-Method``) from an allowed origin is answered 204 here; from any
other origin it is answered without CORS headers, so the browser refuses the call. The
registered origins are read again at most once a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mappings.core.errors import Issue, operation_outcome

__all__ = ["Cors", "origin_of"]

_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
_HEADERS = (
    "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, "
    "If-Modified-Since, Prefer, X-Request-Id"
)
_EXPOSED = "Location, Content-Location, ETag, Last-Modified, X-Correlation-Id, WWW-Authenticate"
_PATHS_OUTSIDE_THE_API = ("/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/jwks")
_REFUSED = orjson.dumps(
    operation_outcome(
        [Issue("error", "forbidden", "This origin is not one of a registered app (CORS)")]
    )
)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` (None when it has none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class Cors:
    """ASGI middleware; ``registered`` gives the redirect URIs of the registered apps."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mount: str,
        configured: Iterable[str] = (),
        registered: Callable[[], Iterable[str]] | None = None,
        refresh: float = 1.0,
    ) -> None:
        self.app = app
        self.mount = mount
        self.configured = frozenset(o for o in (origin_of(u) for u in configured) if o)
        self.registered = registered
        self.refresh = refresh
        self._lock = threading.Lock()
        self._known: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def allowed(self, origin: str) -> bool:
        origin = origin.lower()
        return origin in self.configured or origin in self._registered_origins()

    def _registered_origins(self) -> frozenset[str]:
        if self.registered is None:
            return frozenset()
        now = time.monotonic()
        with self._lock:
            if now - self._read_at < self.refresh:
                return self._known
            self._read_at = now
        known = frozenset(o for o in (origin_of(u) for u in self.registered()) if o)
        with self._lock:
            self._known = known
        return known

    def _applies(self, path: str) -> bool:
        return (
            path.startswith(f"{self.mount}/")
            or path == self.mount
            or path.startswith(_PATHS_OUTSIDE_THE_API)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = await run_in_threadpool(self.allowed, origin)
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if preflight:
            await self._preflight(send, origin if allowed else None)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", _EXPOSED.encode()),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_cors)

    @staticmethod
    async def _preflight(send: Send, origin: str | None) -> None:
        if origin is None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"vary", b"Origin"),
                        (b"content-type", b"application/fhir+json; charset=utf-8"),
                        (b"content-length", str(len(_REFUSED)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSED})
            return
        headers = [
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", _METHODS.encode()),
            (b"access-control-allow-headers", _HEADERS.encode()),
            (b"access-control-max-age", b"600"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
