"""The HTTP edge: parse, call the interaction, render. Nothing else lives here.

The app is Starlette's (OAuth, the portal, discovery, CORS); the FHIR endpoint itself
is plain ASGI, and most requests for resource types reach it before Starlette does
(ADR 0029).

Every failure leaves as an OperationOutcome: a :class:`~mappings.core.errors.FhirError`
with its own status, anything unexpected as a 500 carrying only a correlation id (the
log line has the id and the exception's type and frames, never its message, which may
hold SQL or health data).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from consent.audit import Access, audit_event
from consent.context import AccessContext
from consent.tokens import InvalidToken
from gateway.http.cors import Cors
from gateway.http.formats import JSON, XML, choose_format, parse_body, render_body
from gateway.http.memory import release_memory, settle_heap
from gateway.http.oauth import oauth_routes
from gateway.http.threads import Threads
from gateway.http.tokens import Contexts, VerifiedTokens
from gateway.interactions.auditlog import GroupCommit, LogIndexer
from gateway.interactions.authorize import (
    ConsentCaller,
    commit_events,
    commit_events_async,
    commit_events_now,
)
from gateway.interactions.dispatch import Dispatcher, dispatch, shows_access_log
from gateway.interactions.grants import GrantCache
from gateway.interactions.model import Context, FhirRequest, FhirResponse, Services
from gateway.interactions.privileged import system_context
from gateway.interactions.refusals import Refusal, RefusalTally
from gateway.interactions.routes import route_of
from gateway.portal import PortalWiring, portal_routes
from gateway.security import Security
from gateway.settings import Settings
from gateway.store.access import AccessFilter
from gateway.store.ahead import Ahead, AheadFailed, NotOnLoop, run_ahead
from gateway.store.repository import Budget, EpochMoved, OverBudget
from mappings.core.clock import format_instant
from mappings.core.errors import (
    FhirError,
    Invalid,
    Issue,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
    operation_outcome,
)
from mappings.core.xml import XmlCodec

__all__ = ["build_http_app"]

log = logging.getLogger("eigendossier.http")
_CONTENT_TYPES = {
    JSON: "application/fhir+json; charset=utf-8",
    XML: "application/fhir+xml; charset=utf-8",
}
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_LARGE_BODY = 1024 * 1024
_LOOP_BUDGET = 100_000
#: the threads writes run on at most at once (as many as anyio's pool had, which they ran
#: on before ADR 0033)
_WRITERS = 40
#: the most resources a search served on the loop may answer with (ADR 0022): the budget
#: bounds its database work, this its Python work (the page, rendered on the loop)
_LOOP_PAGE = 100


class FhirEndpoint:
    """One ASGI handler for every FHIR path under the base."""

    def __init__(self, services: Services, settings: Settings, security: Security | None) -> None:
        self.services = services
        self.settings = settings
        self.security = security
        self.codec = XmlCodec(services.definitions)
        sqlite = services.store.engine.dialect.name == "sqlite"
        self.log = (
            GroupCommit(
                # one batch at a time on either database: on PostgreSQL what arrives while
                # one is written makes the next, in fewer round trips and commits (ADR 0055)
                lambda events: commit_events(services, events),
                write_now=(lambda events: commit_events_now(services, events)) if sqlite else None,
                write_async=(
                    None if sqlite else (lambda events: commit_events_async(services, events))
                ),
            )
            if security
            else None
        )
        #: reads of one resource and searches of one type on the event loop, their
        #: statements run there (SQLite: a call into a library, microseconds)
        self.reads_on_loop = sqlite
        #: reads of one resource on the event loop on PostgreSQL, their statement run
        #: ahead on an asynchronous connection (ADR 0039)
        self.ahead_on_loop = services.store.loop_reads is not None
        #: the SQLite instructions a request on the loop may spend (ADR 0022): about two
        #: milliseconds of this machine's database work; a search of fifty takes ~2,400
        self.loop_budget = _LOOP_BUDGET
        #: the threads reads and searches run on, at most this many at once
        self.readers = Threads(settings.readers(), "reader")
        #: the threads writes run on (ADR 0033)
        self.writers = Threads(_WRITERS, "writer")
        self.grants = GrantCache()
        self.tokens = VerifiedTokens()
        self.contexts = Contexts()
        self.router = Dispatcher()
        self.refusals = RefusalTally(self._write_refusals)
        #: the access epoch this process read or was told last: a read by id takes it
        #: without reading it, and confirms it in its own statement (ADR 0035)
        self.seen_epoch: int | None = None
        #: --open development mode: the one privileged context, made (and logged) once
        self.open = (
            None
            if security
            else system_context(services, "development mode (serve --open)", Dispatcher())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The router's ASGI app for the FHIR paths (the path below the base in
        ``path_params``, as the route matched it)."""
        await self.serve(scope, receive, send, scope.get("path_params", {}).get("path", ""))

    async def serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Answer the request ``scope`` for ``path`` (below the base) in plain ASGI: from
        the router, or straight from the resource lane, which takes most requests past
        Starlette's middleware, request and response objects (ADR 0029)."""
        incoming = _Incoming(scope, receive, path)
        media = JSON
        pretty = incoming.option("_pretty") == "true"
        try:
            media = choose_format(incoming.first("accept"), incoming.option("_format"))
            fhir_request = await self._fhir_request(incoming)
            lane = self._lane(fhir_request)
            if lane == "loop":
                response = await self._call_on_loop(incoming.address, fhir_request)
            elif lane == "read":
                response = await self._call_reading(incoming.address, fhir_request)
            else:
                call = functools.partial(self._call, incoming.address, fhir_request)
                response = await self.writers.run(call)
        except FhirError as error:
            response = FhirResponse(error.status, error.outcome(), dict(error.headers))
        except ClientDisconnect:
            await _respond(send, 400, {}, b"", None)
            return
        except Exception as error:
            response = self._server_error(error)
        status, headers, body, content_type = self._render(incoming.method, response, media, pretty)
        declared = incoming.first("content-length") or ""
        if declared.isascii() and declared.isdigit() and int(declared) >= _LARGE_BODY:
            await run_in_threadpool(release_memory)  # what a large body's parse left behind
        await _respond(send, status, headers, body, content_type)

    def _call(
        self,
        address: str | None,
        fhir_request: FhirRequest,
        epoch: int | None = None,
        guessed: bool = False,
    ) -> FhirResponse:
        """Authorize (unless --open), dispatch, and write the access log of reads.
        ``epoch``: the access epoch the edge read (or, ``guessed``, took as the last it saw,
        for the read to confirm); None: read here."""
        if self.open is not None:
            return dispatch(self.open.again(), fhir_request)
        if _public(fhir_request):  # the CapabilityStatement: no dossier in it
            return dispatch(
                Context(self.services, AccessFilter.nothing(), self.router), fhir_request
            )
        if epoch is None:
            epoch, guessed = self._epoch(fhir_request, on_loop=False)
        caller, context = self._caller(address, fhir_request, epoch, guessed=guessed)
        try:
            return dispatch(context, fhir_request)
        except EpochMoved as moved:  # nothing answered nor recorded: again, under the epoch
            caller.discard()
            self.seen_epoch = moved.epoch
            return self._call(address, fhir_request, moved.epoch)
        finally:
            caller.flush()

    def _epoch(self, fhir_request: FhirRequest, *, on_loop: bool) -> tuple[int | None, bool]:
        """The access epoch for ``fhir_request`` and whether it is guessed: a read by id
        takes the last epoch this process saw, and its own statement confirms it (ADR
        0035), as does a PostgreSQL search whose page is one statement (ADR 0044); any
        other request reads it, in a statement of its own."""
        seen = self.seen_epoch
        if seen is not None and (
            _by_id(fhir_request) or (self.ahead_on_loop and _one_statement_search(fhir_request))
        ):
            return seen, True
        epoch = self.services.store.access_epoch(on_loop=on_loop)
        self.seen_epoch = epoch
        return epoch, False

    def _caller(
        self,
        address: str | None,
        fhir_request: FhirRequest,
        epoch: int | None,
        claims: dict[str, Any] | None = None,
        budget: Budget | None = None,
        *,
        guessed: bool = False,
    ) -> tuple[ConsentCaller, Context]:
        who = self._who(fhir_request, address, epoch, claims)
        caller = ConsentCaller(
            self.services,
            who,
            log=self.log,
            cache=self.grants,
            known_epoch=epoch,
            epoch_guessed=guessed,
        )
        nothing = AccessFilter.nothing()
        return caller, Context(self.services, nothing, self.router, caller=caller, budget=budget)

    def _lane(self, fhir_request: FhirRequest) -> str:
        """Where a request runs: ``loop``, a read of one resource or version, or a search of
        one type, on SQLite, served on the event loop (ADR 0020, ADR 0022): a handful of
        primary-key reads of microseconds each, or a search's few indexed statements, cost
        less than the hop to a thread and back, and a search that turns out large is
        stopped at its budget and served on a reader's thread instead; ``read``, any other
        request that writes nothing, on the readers' threads (ADR 0021); ``write``, on the
        thread pool, where a write waiting for the database's write lock holds no reader
        back. On PostgreSQL a read of one resource or version goes to the loop too, once the
        process knows an access epoch: its one statement runs there on an asynchronous
        connection, without a thread (ADR 0039)."""
        try:
            route, groups = route_of(fhir_request)
        except FhirError:
            return "read"  # answered at once by the interaction (404, 405)
        if route.writes:
            return "write"
        if (
            not route.on_loop
            or fhir_request.body is not None
            # a read of the access log indexes what waits first: a write, never on the loop
            or shows_access_log(route, groups, fhir_request)
        ):
            return "read"
        if self.reads_on_loop and (route.single_statement or _small_page(fhir_request.query)):
            return "loop"
        # PostgreSQL: a read of one statement, its statement run ahead (ADR 0039), once the
        # access epoch is known (reading it is a statement of its own)
        known = self.open is not None or self.seen_epoch is not None
        if (
            self.ahead_on_loop
            and known
            and (route.single_statement or _one_statement_search(fhir_request))
        ):
            return "loop"
        return "read"

    async def _call_reading(
        self,
        address: str | None,
        fhir_request: FhirRequest,
        epoch: int | None = None,
        guessed: bool = False,
    ) -> FhirResponse:
        """:meth:`_call` on one of the readers' threads: at most ``Settings.readers()`` at
        once. On SQLite more would only contend for the interpreter: every row the driver
        steps through releases and takes it back, and eight threads doing so at once spent
        more time handing it over than serving (ADR 0021)."""
        call = functools.partial(self._call, address, fhir_request, epoch, guessed)
        return await self.readers.run(call)

    async def _call_on_loop(self, address: str | None, fhir_request: FhirRequest) -> FhirResponse:
        """:meth:`_call` on the event loop, for a caller whose token's verdict is kept: a
        token to verify, or to refuse (a refusal is written at once), goes to a thread as
        any request does. The access-log entry is committed by the group commit while the
        request waits without a thread; the response leaves after it, as ever.

        On SQLite the read may spend at most ``loop_budget`` SQLite instructions: one that
        goes past it is interrupted and rolled back before it answered or recorded
        anything, and runs again from the start on a reader's thread (ADR 0022). On
        PostgreSQL its statements are awaited on the loop's asynchronous connections while
        the read waits in a greenlet (:meth:`_dispatch_on_loop`, ADR 0039, ADR 0054); one
        the database refused sends it to a reader's thread the same way."""
        budget = Budget(self.loop_budget, Ahead() if self.ahead_on_loop else None)
        if self.open is not None:
            try:
                return await self._dispatch_on_loop(self.open.again(budget), fhir_request)
            except (OverBudget, NotOnLoop) as stopped:
                _told(stopped)
            return await self._call_reading(address, fhir_request)
        epoch, guessed = self._epoch(fhir_request, on_loop=True)
        token = _bearer_token(fhir_request)
        claims = self.tokens.get(token, epoch, self.services.clock.now()) if token else None
        if claims is None:
            return await self._call_reading(address, fhir_request, epoch, guessed)
        caller, context = self._caller(
            address, fhir_request, epoch, claims, budget, guessed=guessed
        )
        try:
            return await self._dispatch_on_loop(context, fhir_request)
        except (OverBudget, NotOnLoop) as stopped:  # nothing answered nor recorded: the run
            caller.discard()  # on a reader's thread records it
            _told(stopped)
        except EpochMoved as moved:  # nor here: again on a reader's thread, under the epoch
            caller.discard()
            self.seen_epoch = epoch = moved.epoch
            guessed = False
        finally:
            await caller.flush_async()
        return await self._call_reading(address, fhir_request, epoch, guessed)

    async def _dispatch_on_loop(self, context: Context, fhir_request: FhirRequest) -> FhirResponse:
        """:func:`dispatch` on the event loop: at once on SQLite, whose statements are calls
        into the process; on PostgreSQL in a greenlet of its own, each statement it asks
        awaited on the loop's asynchronous connections while the loop serves others
        (:func:`~gateway.store.ahead.run_ahead`, ADR 0054)."""
        reads = self.services.store.loop_reads
        if context.budget is None or context.budget.ahead is None or reads is None:
            return dispatch(context, fhir_request)
        return await run_ahead(reads, functools.partial(dispatch, context, fhir_request))

    def _who(
        self,
        request: FhirRequest,
        address: str | None,
        epoch: int | None,
        claims: dict[str, Any] | None = None,
    ) -> AccessContext:
        """The caller of ``request``: its token's verdict kept at ``epoch`` (``claims``,
        when the caller looked it up already), or verified now; its access context the one
        made from the same verdict and address before, if any (ADR 0031)."""
        assert self.security is not None
        token = _bearer_token(request)
        challenge = f'Bearer realm="{self.services.base_url}"'
        if not token:
            raise Unauthorized(
                "A bearer token is required", headers={"WWW-Authenticate": challenge}
            )
        if claims is None:
            claims = self.tokens.get(token, epoch, self.services.clock.now())
        try:
            if claims is None:
                claims = self.security.server.verify_access_token(token)
                self.tokens.put(token, epoch, claims)
        except InvalidToken as error:
            self.refusals.refused(address, str(error)[:120], self.services.clock.now())
            raise Unauthorized(
                "The access token is not valid",
                headers={"WWW-Authenticate": f'{challenge}, error="invalid_token"'},
            ) from None
        return self.contexts.of(claims, address, self.security.context_of)

    def _write_refusals(self, refusals: list[Refusal]) -> None:
        """Forged, expired or revoked tokens, for the auditors (no patient): one entry per
        address, reason and window (:mod:`gateway.interactions.refusals`)."""
        events = []
        for refusal in refusals:
            text = f"refused: no valid token ({refusal.reason})"
            if refusal.count > 1:
                text += f", {refusal.count} times"
            access = Access("read", "4", refusal.last, description=text)
            event = audit_event(None, access, self.services.base_url)
            if refusal.count > 1:
                event["period"] = {
                    "start": format_instant(refusal.first),
                    "end": format_instant(refusal.last),
                }
            if refusal.address:
                event["agent"][0]["network"] = {"address": refusal.address, "type": "2"}
            events.append(event)
        commit_events(self.services, events)

    async def _fhir_request(self, incoming: _Incoming) -> FhirRequest:
        data = await self._read_body(incoming)
        body: Any = None
        form: list[tuple[str, str]] = []
        if data:  # parsing may be heavy (a large Bundle): off the event loop
            body, form = await run_in_threadpool(
                parse_body,
                incoming.first("content-type"),
                data,
                self.codec,
                incoming.method,
                incoming.path,
            )
        query = [(k, v) for k, v in incoming.query if k not in ("_format", "_pretty")]
        return FhirRequest(
            method=incoming.method,
            path=incoming.path,
            query=query + form,
            headers=incoming.headers,
            body=body,
        )

    async def _read_body(self, incoming: _Incoming) -> bytearray:
        """The body in one buffer (parsed from it in place: no second copy), from the
        request's ``http.request`` messages up to the last; a client gone before that is
        :class:`ClientDisconnect`. A request with neither ``Content-Length`` nor
        ``Transfer-Encoding`` has no body (RFC 9112, 6.3): nothing to wait for (ADR 0051)."""
        limit = self.settings.max_body_bytes
        declared = incoming.first("content-length")
        if declared is None and "transfer-encoding" not in incoming.headers:
            return bytearray()
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise Invalid("Content-Length is not a number")
            if int(declared) > limit:
                raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes")
        body = bytearray()
        while True:
            message = await incoming.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > limit:
                raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes")
            body += chunk
            if not message.get("more_body", False):
                return body

    def _server_error(self, error: Exception) -> FhirResponse:
        correlation = str(uuid.uuid4())
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error("unexpected %s [correlation %s]\n%s", type(error).__name__, correlation, frames)
        failure = ServerError(f"Internal error; correlation id {correlation}")
        return FhirResponse(500, failure.outcome(), {"X-Correlation-Id": correlation})

    def _render(self, method: str, response: FhirResponse, media: str, pretty: bool) -> _Rendered:
        """(status, headers, body, content type) of ``response`` in ``media``."""
        headers = response.headers
        if response.media is not None and isinstance(response.body, bytes):
            body = b"" if method == "HEAD" else response.body
            return response.status, headers, body, response.media
        if response.body is None or method == "HEAD":
            media_type = _CONTENT_TYPES[media] if response.body else None
            return response.status, headers, b"", media_type
        try:
            content = render_body(response.body, media, self.codec, pretty=pretty)
        except FhirError as error:
            content = render_body(error.outcome(), media, self.codec, pretty=pretty)
            return error.status, {}, content, _CONTENT_TYPES[media]
        except Exception as error:
            failed = self._server_error(error)
            content = render_body(failed.body or b"", JSON, self.codec, pretty=False)
            return 500, failed.headers, content, _CONTENT_TYPES[JSON]
        return response.status, headers, content, _CONTENT_TYPES[media]


#: a response as :meth:`FhirEndpoint._render` makes it: status, headers, body, content type
_Rendered = tuple[int, Mapping[str, str], bytes, str | None]


class _Incoming:
    """What the endpoint reads of a request, straight from its ASGI scope: the method, the
    path below the base, the query, the headers (names in lower case, as ASGI has them;
    of a repeated header the last, as a dict keeps it, except where :meth:`first` asks
    for the first), the caller's address, and the body's messages."""

    __slots__ = ("address", "headers", "method", "path", "query", "raw", "receive")

    def __init__(self, scope: Scope, receive: Receive, path: str) -> None:
        self.method: str = scope["method"]
        self.path = path
        self.raw: list[tuple[bytes, bytes]] = scope["headers"]
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw}
        text = scope.get("query_string", b"")
        self.query = parse_qsl(text.decode("latin-1"), keep_blank_values=True) if text else []
        client = scope.get("client")
        self.address: str | None = client[0] if client else None
        self.receive = receive

    def first(self, name: str) -> str | None:
        """The first value of the header ``name`` (lower case), None without one."""
        key = name.encode("latin-1")
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        return None

    def option(self, name: str) -> str | None:
        """The last value of the query parameter ``name`` (``_format``, ``_pretty``)."""
        found = None
        for k, v in self.query:
            if k == name:
                found = v
        return found


async def _respond(
    send: Send, status: int, headers: Mapping[str, str], body: bytes, content_type: str | None
) -> None:
    """Send a response: the headers given, then ``content-length`` (except for statuses that
    have no body) and ``content-type`` unless given, in one start message and one body."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    keys = {k for k, _ in raw}
    if b"content-length" not in keys and not (status < 200 or status in (204, 304)):
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
    if content_type is not None and b"content-type" not in keys:
        raw.append((b"content-type", content_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _small_page(query: list[tuple[str, str]]) -> bool:
    """Whether a search answers with at most ``_LOOP_PAGE`` resources: no includes, and a
    page of that size or less."""
    for name, value in query:
        if name.startswith(("_include", "_revinclude")):
            return False
        if name == "_count" and not (
            value.isascii() and value.isdigit() and int(value) <= _LOOP_PAGE
        ):
            return False
    return True


def _told(stopped: Exception) -> None:
    """Log a read on the loop that goes to a thread because the database refused its
    statement (by the error's type alone); a read past its budget goes there unlogged."""
    if isinstance(stopped, AheadFailed):
        log.warning("a statement run ahead failed: %s", stopped.failure)


def _bearer_token(request: FhirRequest) -> str:
    """The bearer token of ``request`` ("" when it has none)."""
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


_NOT_HERE = orjson.dumps(
    operation_outcome(
        [Issue("error", "not-found", "Nothing here; the FHIR API is under the base URL")]
    )
)


async def _not_found(request: Request, exc: Exception) -> Response:
    return Response(_NOT_HERE, status_code=404, media_type=_CONTENT_TYPES[JSON])


async def _not_allowed(request: Request, exc: Exception) -> Response:
    """A method no route takes (OPTIONS, TRACE, PROPFIND, ...): an OperationOutcome, or
    RFC 6749 error JSON on the OAuth endpoints, with ``Allow``."""
    headers = dict(getattr(exc, "headers", None) or {})
    text = f"{request.method[:20]} is not allowed here"
    if request.url.path.startswith("/oauth/"):
        body = orjson.dumps({"error": "invalid_request", "error_description": text})
        return Response(body, 405, headers, media_type="application/json")
    body = orjson.dumps(operation_outcome([Issue("error", "not-supported", text)]))
    return Response(body, 405, headers, media_type=_CONTENT_TYPES[JSON])


def _by_id(request: FhirRequest) -> bool:
    """Whether ``request`` reads one resource (or version) by id: one statement under the
    caller's filter, which can carry the access epoch to confirm it (ADR 0035)."""
    try:
        route, _ = route_of(request)
    except FhirError:
        return False
    return route.single_statement


def _one_statement_search(request: FhirRequest) -> bool:
    """Whether ``request`` searches one type for a page that PostgreSQL can answer in one
    statement with the access epoch beside it (ADR 0044): no includes, not a count alone,
    a page of at most ``_LOOP_PAGE``. The search decides for itself (its filters may have
    no shape); this only spares an attempt that cannot succeed."""
    try:
        route, _ = route_of(request)
    except FhirError:
        return False
    if route.name != "search-type" or not _small_page(request.query):
        return False
    return not any(
        (name == "_summary" and value == "count") or (name == "_count" and value == "0")
        for name, value in request.query
    )


def _public(request: FhirRequest) -> bool:
    """The CapabilityStatement is readable without a token (SMART discovery starts there)."""
    return request.method in ("GET", "HEAD") and request.path.strip("/") == "metadata"


def _portal(services: Services, security: Security) -> list[Route]:
    """The client's portal: an app of this gateway over its public API (docs/adr/0017)."""
    keys = _Cached(lambda: security.derived_keys("eigendossier portal session"), 60.0)
    wiring = PortalWiring(
        fhir_base=services.base_url,
        oauth_base=security.server.oauth_base,
        canon=services.care.canon,
        clock=services.clock,
        keys=keys.get,
        register=security.ensure_app,
    )
    return portal_routes(wiring)


class _Cached:
    """A value read again at most every ``seconds`` (the signing keys change rarely)."""

    def __init__(self, load: Callable[[], list[bytes]], seconds: float) -> None:
        self._load = load
        self._seconds = seconds
        self._value: list[bytes] = []
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self) -> list[bytes]:
        with self._lock:
            if not self._value or time.monotonic() - self._at > self._seconds:
                self._value = self._load()
                self._at = time.monotonic()
            return self._value


class _ResourceLane:
    """Requests for the resource types of the FHIR API (``{base}/Patient/..``) straight to
    the endpoint, past Starlette's exception middleware and router (ADR 0020): every other
    path (the base itself, system-level interactions, discovery, OAuth, the portal, paths
    that lead nowhere) takes the router as before. The endpoint answers every failure
    itself; the router would have sent these requests to it all the same. Within the
    stack it serves the requests with an ``Origin`` (:class:`_Gateway` took the others)."""

    def __init__(self, app: ASGIApp, endpoint: FhirEndpoint, mount: str) -> None:
        self.app = app
        self.endpoint = endpoint
        self.prefix = f"{mount}/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rest = _resource_path(scope, self.prefix)
        if rest is not None:
            await self.endpoint.serve(scope, receive, send, rest)
            return
        await self.app(scope, receive, send)


def _resource_path(scope: Scope, prefix: str) -> str | None:
    """The path below the base (``prefix``: the mount and a slash) of a request for a
    resource type, which the endpoint takes straight; None for any other request."""
    if scope["type"] == "http" and scope["method"] in _METHODS:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if rest[:1].isascii() and rest[:1].isupper():  # a resource type
                return rest
    return None


class _Gateway(Starlette):
    """The app. A request for a resource type that has no ``Origin`` header (a server's,
    such as a GP system's: no CORS headers to add) goes to the endpoint before Starlette's
    middleware stack, which would only pass it on (ADR 0029); every other request takes
    the stack, the resource lane within it as before. The endpoint answers every failure
    itself, as the stack's error middleware would have."""

    def __init__(self, *args: Any, endpoint: FhirEndpoint, mount: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        self.prefix = f"{mount}/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _has_origin(scope["headers"]):
            rest = _resource_path(scope, self.prefix)
            if rest is not None:
                scope["app"] = self
                await self.endpoint.serve(scope, receive, send, rest)
                return
        await super().__call__(scope, receive, send)


def _has_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"origin" for name, _ in headers)


def build_http_app(services: Services, settings: Settings, security: Security | None) -> Starlette:
    """The Starlette app serving the FHIR API under ``settings.mount_path``."""
    endpoint = FhirEndpoint(services, settings, security)
    mount = settings.mount_path
    routes = [
        *(oauth_routes(security, mount) if security is not None else []),
        *(_portal(services, security) if security is not None else []),
        Route(f"{mount}/{{path:path}}", endpoint, methods=_METHODS),
        Route(f"{mount}" or "/", endpoint, methods=_METHODS),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        halt = threading.Event()  # the indexer's: it stops after everything else
        indexer = threading.Thread(target=LogIndexer(services.store).run, args=(halt,), daemon=True)
        if settings.log_indexer_thread:
            indexer.start()
        worker = None
        if settings.delivery_worker:  # the outbox's deliveries, in a thread of this process
            from gateway.delivery import Worker  # noqa: PLC0415

            apps = security.store.app if security is not None else None
            worker = threading.Thread(
                target=Worker(services, apps=apps).run, args=(stop,), daemon=True
            )
            worker.start()
        settle_heap()  # what startup built stays: no full collection walks it again
        yield
        for threads in (endpoint.readers, endpoint.writers):  # what they run ends first
            await run_in_threadpool(threads.close)
        if services.store.loop_reads is not None:
            services.store.loop_reads.close()
        stop.set()
        services.store.outbox_written.set()  # wake it to see the stop
        if worker is not None:
            await run_in_threadpool(worker.join, 15)
        await run_in_threadpool(endpoint.refusals.flush)  # counts held are written, not lost
        halt.set()
        if indexer.is_alive():
            await run_in_threadpool(indexer.join, 15)  # what waits is indexed before the stop

    registered = None
    if security is not None:
        store = security.store

        def registered() -> list[str]:
            return [u for app in store.apps() if app.active for u in app.redirect_uris]

    cors = Middleware(Cors, mount=mount, configured=settings.cors_origins, registered=registered)
    lane = Middleware(_ResourceLane, endpoint=endpoint, mount=mount)
    app = _Gateway(
        routes=routes,
        exception_handlers={404: _not_found, 405: _not_allowed},
        lifespan=lifespan,
        middleware=[cors, lane],
        endpoint=endpoint,
        mount=mount,
    )
    app.state.services = services
    app.state.endpoint = endpoint
    return app
