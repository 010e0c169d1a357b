"""CORS: a SMART app in a browser on a registered origin may call the API and the token
endpoint; any other origin gets no CORS headers, and never ``*``."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.smart import origin, public_app


def _preflight(url: str, origin_: str) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin_,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_a_registered_apps_origin_may_call_from_a_browser(secure: dict[str, Any]) -> None:
    base = secure["base"]
    public_app(secure["security"])  # redirect URI http://127.0.0.1:9/callback
    time.sleep(1.1)  # the registered origins are read again at most once a second
    app_origin = "http://127.0.0.1:9"
    for url in (f"{base}/Patient", f"{origin(base)}/oauth/token"):
        answer = _preflight(url, app_origin)
        assert answer.status_code == 204, url
        assert answer.headers["access-control-allow-origin"] == app_origin
        assert "Authorization" in answer.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in answer.headers
    read = httpx.get(f"{base}/metadata", headers={"Origin": app_origin})
    assert read.headers["access-control-allow-origin"] == app_origin
    assert "ETag" in read.headers["access-control-expose-headers"]
    refused = httpx.get(f"{base}/Patient", headers={"Origin": app_origin})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == app_origin  # readable error
    statement = read.json()
    assert statement["rest"][0]["security"]["cors"] is True


def test_any_other_origin_gets_no_cors(secure: dict[str, Any]) -> None:
    base = secure["base"]
    public_app(secure["security"])
    for stranger in ("https://evil.example", "null", "http://127.0.0.1:10"):
        answer = _preflight(f"{base}/Patient", stranger)
        assert answer.status_code == 403
        assert "access-control-allow-origin" not in answer.headers
        assert answer.json()["resourceType"] == "OperationOutcome"
        read = httpx.get(f"{base}/metadata", headers={"Origin": stranger})
        assert read.status_code == 200
        assert "access-control-allow-origin" not in read.headers


def test_a_disabled_app_loses_its_origin(secure: dict[str, Any]) -> None:
    import dataclasses

    security, base = secure["security"], secure["base"]
    client_id = public_app(security)
    time.sleep(1.1)
    assert _preflight(f"{base}/Patient", "http://127.0.0.1:9").status_code == 204
    found = security.store.app(client_id)
    security.store.save_app(dataclasses.replace(found, active=False))
    time.sleep(1.1)
    assert _preflight(f"{base}/Patient", "http://127.0.0.1:9").status_code == 403
