"""The HTTP connection: every error is an OperationOutcome (OAuth error JSON on the OAuth
endpoints), even where the application never sees the request; header limits, read
timeouts and a connection cap that an abusive client cannot get past. Over raw sockets,
because a well-behaved client cannot send what these tests send."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.http.protocol import ConnectionLimits, GuardedHttpProtocol, configure


def _address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _raw(base: str, data: bytes, *, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(_address(base), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def _outcome(body: bytes) -> dict:
    found = json.loads(body)
    assert found["resourceType"] == "OperationOutcome"
    return found


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND", "MKCOL"])
def test_methods_nobody_routes_are_405_operation_outcomes(base: str, method: str) -> None:
    response = httpx.request(method, f"{base}/Patient")
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "GET" in response.headers["allow"]
    assert "json" in response.headers["content-type"]


def test_an_unparsable_request_is_a_400_operation_outcome(base: str) -> None:
    for data in (b"FOO /fhir/Patient HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /fhir/ HTTP/9.9\r\n\r\n"):
        status, headers, body = _raw(base, data)
        assert status == 400, data
        assert headers["content-type"].startswith("application/fhir+json")
        _outcome(body)


def test_a_huge_url_or_header_is_431(base: str) -> None:
    path = "/fhir/Patient?name=" + "a" * 40_000
    status, _, body = _raw(base, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 431
    _outcome(body)
    header = "X-Big: " + "b" * 5_000_000
    status, _, body = _raw(base, f"GET /fhir/metadata HTTP/1.1\r\n{header}\r\n\r\n".encode())
    assert status == 431
    many = "".join(f"X-{i}: v\r\n" for i in range(150))
    status, _, body = _raw(base, f"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert status == 431
    assert "at most 100 headers" in _outcome(body)["issue"][0]["diagnostics"]


@pytest.fixture()
def short_timeouts() -> Iterator[None]:
    before = GuardedHttpProtocol.limits
    configure(ConnectionLimits(header_timeout=0.5, body_timeout=0.5, max_connections=1000))
    yield
    configure(before)


def test_half_sent_requests_time_out_with_408(base: str, short_timeouts: None) -> None:
    with socket.create_connection(_address(base), timeout=10) as sock:
        sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n")  # headers never end
        started = time.monotonic()
        answer = sock.recv(65536)
        assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 408")
    with socket.create_connection(_address(base), timeout=10) as sock:
        head = b"PUT /fhir/Patient/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
        sock.sendall(head + b"Content-Length: 100\r\n\r\n{")  # the body stops
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    with socket.create_connection(_address(base), timeout=10) as sock:  # says nothing at all
        assert sock.recv(65536) == b""
    assert httpx.get(f"{base}/Patient/t").status_code == 404  # nothing half written


def test_a_shorter_wait_after_a_longer_one_still_times_out_in_time(base: str) -> None:
    """The connection's one timer: a first request's body comes after its headers' wait
    would have ended, so the timer is set for the body's long wait, and is still set when
    that request is answered; the second request's headers then stall, and their short
    wait rings in time (the timer is set again for the earlier deadline)."""
    before = GuardedHttpProtocol.limits
    configure(ConnectionLimits(header_timeout=0.5, body_timeout=60, max_connections=1000))
    body = b'{"resourceType":"Patient","active":true}'
    head = (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    try:
        with socket.create_connection(_address(base), timeout=30) as sock:
            sock.sendall(head)
            time.sleep(1.0)  # past the headers' wait: the body's is the one set now
            sock.sendall(body)
            first = b""
            while b"\r\n\r\n" not in first:
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 201")
            length = int(first.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            rest = first.partition(b"\r\n\r\n")[2]
            while len(rest) < length:
                rest += sock.recv(65536)
            sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n")  # headers never end
            started = time.monotonic()
            answer = sock.recv(65536)
            assert time.monotonic() - started < 10
        assert answer.startswith(b"HTTP/1.1 408")
    finally:
        configure(before)


def test_connections_beyond_the_cap_get_503(base: str) -> None:
    before = GuardedHttpProtocol.limits
    configure(ConnectionLimits(max_connections=5))
    held = []
    try:
        for _ in range(5):
            held.append(socket.create_connection(_address(base), timeout=10))
        time.sleep(0.2)
        status, _, body = _raw(base, b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503
        _outcome(body)
    finally:
        for sock in held:
            sock.close()
        configure(before)
    time.sleep(0.2)
    assert httpx.get(f"{base}/metadata").status_code == 200


def test_the_oauth_endpoints_answer_oauth_error_json(secure: dict) -> None:
    origin = secure["base"].rsplit("/fhir", 1)[0]
    response = httpx.get(f"{origin}/oauth/token")
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"
