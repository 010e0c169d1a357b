"""Outgoing calls of the authorization server: https only, no redirects, bounded in time and
size, JSON objects only; against a real local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consent import web


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(1.5)
        body = {
            "/jwks": json.dumps({"keys": []}).encode(),
            "/huge": b'{"x":"' + b"a" * (web.LIMIT + 10) + b'"}',
            "/list": b"[1, 2]",
            "/html": b"<html>no</html>",
            "/slow": b"{}",
        }.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on a large or slow answer, as it should


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_json_object_is_read(server: str) -> None:
    assert web.get_json(f"{server}/jwks") == {"keys": []}


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/redirect", "redirect"),
        ("/huge", "too large"),
        ("/list", "not a JSON object"),
        ("/html", "not JSON"),
        ("/missing", "answers 404"),
    ],
)
def test_what_is_refused(server: str, path: str, says: str) -> None:
    with pytest.raises(web.Unreachable, match=says):
        web.get_json(f"{server}{path}")


def test_a_slow_server_times_out(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "TIMEOUT", 0.3)
    with pytest.raises(web.Unreachable, match="in time"):
        web.get_json(f"{server}/slow")


@pytest.mark.parametrize(
    "url", ["http://example.org/jwks", "ftp://127.0.0.1/x", "http://10.0.0.1/x", "file:///etc/x"]
)
def test_only_https_or_loopback(url: str) -> None:
    with pytest.raises(web.Unreachable, match="https"):
        web.get_json(url)


def test_loopback_is_local() -> None:
    assert web.is_local("http://127.0.0.2:8080/x") and web.is_local("http://[::1]/x")
    assert not web.is_local("http://127.0.0.1.example.org/x")
