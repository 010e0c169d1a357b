"""The HTTP connection itself: limits an abusive client cannot get past, and answers that are
OperationOutcomes even where the application never sees the request.

uvicorn's protocol (httptools) is extended, not replaced:

- **header size and count**: at most ``max_header_bytes`` of request line and headers, at
  most ``max_headers`` headers (431 otherwise);
- **read timeouts**: the request line and headers must arrive within ``header_timeout``
  seconds of the first byte (or of the connection, for a client that sends nothing); the
  body may pause at most ``body_timeout`` seconds between two chunks (408 otherwise);
- **connections**: at most ``max_connections`` open at once per process (503 otherwise);
- a request the HTTP parser cannot read (an unknown method, a broken request line) is a 400
  with an OperationOutcome instead of uvicorn's plain text;
- **a response's head and body leave in one write**: uvicorn writes the status line and
  headers as soon as the application starts its response, and the body after; the
  connection's transport holds the first write until the second (or the loop's next turn),
  so a response is one system call and one segment instead of two (ADR 0025).

uvicorn takes the protocol as a class, in every worker process: the limits are read from
``EIGENDOSSIER_*`` variables when a worker starts, or set by :func:`configure` in the
process that serves alone.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mappings.core.errors import Issue, operation_outcome

__all__ = ["ConnectionLimits", "GuardedHttpProtocol", "OneWrite", "configure"]

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
_CODES = {400: "structure", 408: "timeout", 431: "too-long", 503: "transient"}
_LINGER = 2.0  # seconds a refused connection is drained before it is closed


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000

    @classmethod
    def from_env(cls) -> ConnectionLimits:
        def number(name: str, default: float) -> float:
            value = os.environ.get(f"EIGENDOSSIER_{name.upper()}")
            try:
                return float(value) if value else default
            except ValueError:
                return default

        base = cls()
        return cls(
            max_header_bytes=int(number("max_header_bytes", base.max_header_bytes)),
            max_headers=int(number("max_headers", base.max_headers)),
            header_timeout=number("header_timeout", base.header_timeout),
            body_timeout=number("body_timeout", base.body_timeout),
            max_connections=int(number("max_connections", base.max_connections)),
        )


def configure(limits: ConnectionLimits) -> None:
    """Set the limits of this process's connections."""
    GuardedHttpProtocol.limits = limits


def _answer(status: int, message: str) -> bytes:
    body = orjson.dumps(operation_outcome([Issue("error", _CODES[status], message)]))
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "content-type: application/fhir+json; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits.from_env()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._header_bytes = 0
        self._header_count = 0
        self._timer: asyncio.TimerHandle | None = None
        #: when the wait armed last ends (the loop's clock), and whether it ends silently;
        #: None: nothing armed
        self._deadline: float | None = None
        self._silent = False

    # -- the connection --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWrite(transport, self.loop))
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "The gateway has as many connections as it serves; try again")
            return
        self._arm(self.limits.header_timeout, silent=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "The request is not valid HTTP/1.1 (its method, line or headers)")

    # -- the parser's callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0
        self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._count(len(name) + len(value) + 4, 1)
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._arm(self.limits.body_timeout)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        super().on_message_complete()

    # -- limits ----------------------------------------------------------------------------

    def _count(self, size: int, headers: int) -> None:
        self._header_bytes += size
        self._header_count += headers
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(
                431, f"Request line and headers exceed {self.limits.max_header_bytes} bytes"
            )
        elif self._header_count > self.limits.max_headers:
            self._refuse(431, f"A request has at most {self.limits.max_headers} headers")

    def _arm(self, seconds: float, *, silent: bool = False) -> None:
        """Wait ``seconds`` for the client from now. A request arms and disarms three
        times (its start, its headers, its end): the deadline moves, and the connection's
        one timer is set again only when it would ring after it. A timer that rings
        before the deadline sets itself for the rest (:meth:`_ring`)."""
        deadline = self.loop.time() + seconds
        self._deadline, self._silent = deadline, silent
        if self._timer is not None and self._timer.when() <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._ring)

    def _disarm(self) -> None:
        self._deadline = None  # a timer still set rings, finds nothing armed, and stops

    def _ring(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self._deadline > self.loop.time():  # armed again since it was set
            self._timer = self.loop.call_at(self._deadline, self._ring)
            return
        self._deadline = None
        self._timed_out(self._silent)

    def _timed_out(self, silent: bool) -> None:
        if silent:  # a connection that never sent a byte: just close it
            self._refused = True
            self.transport.close()
            return
        self._refuse(408, "The request did not arrive in time")

    def _refuse(self, status: int, message: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # an application task in flight stops writing
            self.cycle.message_event.set()
        if not self.transport.is_closing():
            # answer, end our side, and drain what the client still sends for a moment:
            # closing at once would reset the connection and lose the answer
            self.transport.write(_answer(status, message))
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_LINGER, self.transport.close)


class OneWrite(asyncio.Transport):
    """A transport that joins a write with the one after it: the first write of a turn of
    the event loop is held, the next is sent together with it at once, and a write that
    none follows is sent at the loop's next turn. Closing, ending our side or asking what
    is buffered sends what is held first; everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        held, self._held = self._held, None
        self._transport.write(held + data)

    def flush(self) -> None:
        """Send what is held (nothing when the write after it took it along)."""
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
