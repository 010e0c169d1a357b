"""A server that fails one check on purpose: the real gateway behind a transport that changes
one kind of answer (or answers itself) the way a faulty server would.

Each rule gets the request and a way to ask the real server, and returns the answer the kit
sees. ``RULES`` has one per check id: a test holds every check of the catalogue to failing
against its rule, so no check is one that cannot fail.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx

Forward = Callable[[httpx.Request], httpx.Response]
Rule = Callable[[httpx.Request, Forward], httpx.Response]

FHIR_JSON = {"content-type": "application/fhir+json"}
TOKEN = {
    "access_token": "a.b.c",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "system/*.rs",
}


class Breaking(httpx.BaseTransport):
    """Forwards to the real server through ``rule``."""

    def __init__(self, rule: Rule) -> None:
        self.real = httpx.HTTPTransport()
        self.rule = rule

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        def forward(req: httpx.Request) -> httpx.Response:
            response = self.real.handle_request(req)
            response.read()
            return response

        return self.rule(request, forward)

    def close(self) -> None:
        self.real.close()


# -- reading requests -------------------------------------------------------------------


def _path(request: httpx.Request) -> str:
    return request.url.path


def _query(request: httpx.Request) -> str:
    return request.url.query.decode()


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header, payload = token.split(".")[:2]
        return tuple(  # type: ignore[return-value]
            json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (header, payload)
        )
    except (ValueError, IndexError):
        return {}, {}


def _bearer(request: httpx.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    header = request.headers.get("authorization", "")
    return _jwt(header[7:]) if header.lower().startswith("bearer ") else ({}, {})


def _kind(request: httpx.Request) -> str | None:
    return _bearer(request)[1].get("kind")


def _assertion(request: httpx.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    return _jwt(_form(request).get("client_assertion", ""))


def _is(request: httpx.Request, method: str, pattern: str) -> bool:
    return request.method == method and re.search(pattern, _path(request)) is not None


# -- making answers ---------------------------------------------------------------------


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, headers=headers or FHIR_JSON, content=content)


def bundle(*resources: dict[str, Any], total: int | None = None) -> httpx.Response:
    return answer(
        200,
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources) if total is None else total,
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        },
    )


def edited(response: httpx.Response, edit: Callable[[Any], Any]) -> httpx.Response:
    body = edit(response.json())
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return answer(response.status_code, body, headers)


def when(
    test: Callable[[httpx.Request], bool], then: Callable[[httpx.Request, Forward], httpx.Response]
) -> Rule:
    def rule(request: httpx.Request, forward: Forward) -> httpx.Response:
        return then(request, forward) if test(request) else forward(request)

    return rule


def after(
    test: Callable[[httpx.Request], bool], change: Callable[[httpx.Response], httpx.Response]
) -> Rule:
    """Ask the real server once; change its answer where ``test`` holds."""

    def rule(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = forward(request)
        return change(response) if test(request) else response

    return rule


def edit_json(test: Callable[[httpx.Request], bool], edit: Callable[[Any], Any]) -> Rule:
    return after(test, lambda response: edited(response, edit))


def instead(test: Callable[[httpx.Request], bool], made: Callable[[], httpx.Response]) -> Rule:
    return when(test, lambda r, f: made())


def _set(key: str, value: Any) -> Callable[[Any], Any]:
    return lambda body: {**body, key: value}


def _drop(key: str) -> Callable[[Any], Any]:
    return lambda body: {k: v for k, v in body.items() if k != key}


def _each_resource(edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Any], Any]:
    def change(body: Any) -> Any:
        for rest in body.get("rest", []):
            rest["resource"] = [edit(r) for r in rest.get("resource", [])]
        return body

    return change


def _without_operations(body: Any) -> Any:
    for rest in body.get("rest", []):
        rest.pop("operation", None)
        for resource in rest.get("resource", []):
            resource.pop("operation", None)
    return body


def _without_security(body: Any) -> Any:
    for rest in body.get("rest", []):
        rest.pop("security", None)
    return body


def _xml_version(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)
    text = response.text.replace('<fhirVersion value="4.0.1"/>', '<fhirVersion value="3.0.2"/>')
    return httpx.Response(
        200, headers={"content-type": "application/fhir+xml"}, content=text.encode()
    )


def _xml_status(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)
    text = re.sub(r'<status value="[a-z-]+"/>', '<status value="amended"/>', response.text, count=1)
    return httpx.Response(
        200, headers={"content-type": "application/fhir+xml"}, content=text.encode()
    )


# -- one rule per check -----------------------------------------------------------------

_METADATA = lambda r: _is(r, "GET", r"/fhir/metadata$") and "xml" not in r.headers.get("accept", "")  # noqa: E731
_SMART = lambda r: _is(r, "GET", r"/\.well-known/smart-configuration$")  # noqa: E731
_TOKEN = lambda r: _is(r, "POST", r"/oauth/token$")  # noqa: E731
_BACKEND = lambda r: _TOKEN(r) and _form(r).get("grant_type") == "client_credentials"  # noqa: E731
_CODE = lambda r: _TOKEN(r) and _form(r).get("grant_type") == "authorization_code"  # noqa: E731
_API_SYSTEM = lambda r: "/fhir/" in _path(r) and _kind(r) == "system"  # noqa: E731


def _accepts_anyway(test: Callable[[httpx.Request], bool]) -> Rule:
    """Where the real token endpoint refuses, hand out a token."""
    return after(test, lambda a: answer(200, TOKEN) if a.status_code in (400, 401) else a)


_seen: set[str] = set()


def _replays(request: httpx.Request) -> bool:
    assertion = _form(request).get("client_assertion", "")
    if assertion in _seen:
        return True
    _seen.add(assertion)
    return False


def _bearer_alg(alg: str) -> Callable[[httpx.Request], bool]:
    return lambda r: "/fhir/" in _path(r) and _bearer(r)[0].get("alg") == alg


def _growing_count() -> Rule:
    """A server whose total grows at every search: the rule keeps its own count."""
    calls = itertools.count(1)
    return lambda request, forward: bundle(total=100 + next(calls))


RULES: dict[str, Rule] = {
    "cap-01": edit_json(_METADATA, _set("status", "bogus")),
    "cap-02": edit_json(_METADATA, _set("fhirVersion", "4.0.0")),
    "cap-03": edit_json(_METADATA, _set("format", ["json"])),
    "cap-04": edit_json(_METADATA, _each_resource(lambda r: {**r, "supportedProfile": []})),
    "cap-05": edit_json(_METADATA, _without_operations),
    "cap-06": edit_json(_METADATA, _without_security),
    "cap-07": edit_json(_SMART, _drop("token_endpoint")),
    "cap-08": edit_json(_SMART, _drop("issuer")),
    "cap-09": edit_json(_SMART, _set("code_challenge_methods_supported", ["S256", "plain"])),
    "cap-10": instead(lambda r: _is(r, "GET", r"/fhir/Patient$") and not _bearer(r)[1], bundle),
    "cap-11": when(
        lambda r: "xml" in r.headers.get("accept", "") and _is(r, "GET", "metadata"), _xml_version
    ),
    "smart-backend-01": instead(
        lambda r: _BACKEND(r) and _assertion(r)[0].get("alg") == "RS384",
        lambda: answer(401, {"error": "invalid_client"}),
    ),
    "smart-backend-02": instead(
        lambda r: _BACKEND(r) and _assertion(r)[0].get("alg") == "ES384",
        lambda: answer(401, {"error": "invalid_client"}),
    ),
    "smart-backend-03": instead(lambda r: _BACKEND(r) and _replays(r), lambda: answer(200, TOKEN)),
    "smart-backend-04": instead(
        lambda r: _BACKEND(r) and _assertion(r)[1].get("exp", 0) > time.time() + 600,
        lambda: answer(200, TOKEN),
    ),
    "smart-backend-05": instead(
        lambda r: _BACKEND(r) and "elsewhere" in str(_assertion(r)[1].get("aud")),
        lambda: answer(200, TOKEN),
    ),
    "smart-backend-06": instead(
        lambda r: _BACKEND(r) and _assertion(r)[1].get("exp", 0) < time.time(),
        lambda: answer(200, TOKEN),
    ),
    "smart-backend-07": _accepts_anyway(_BACKEND),
    "smart-token-01": instead(_bearer_alg("none"), bundle),
    "smart-token-02": instead(_bearer_alg("HS256"), bundle),
    "smart-token-03": instead(
        lambda r: "/fhir/" in _path(r) and _bearer(r)[1].get("exp", time.time() + 1) < time.time(),
        bundle,
    ),
    "smart-token-04": instead(
        lambda r: "/fhir/" in _path(r) and "elsewhere" in str(_bearer(r)[1].get("aud")), bundle
    ),
    "smart-launch-01": edit_json(_CODE, _drop("patient")),
    "smart-launch-02": instead(
        lambda r: _is(r, "GET", "/oauth/authorize$") and "code_challenge_method=plain" in _query(r),
        lambda: httpx.Response(302, headers={"location": "http://127.0.0.1:9/callback?code=x"}),
    ),
    "smart-launch-03": instead(
        lambda r: _is(r, "GET", "/oauth/authorize$") and "attacker.example" in _query(r),
        lambda: httpx.Response(302, headers={"location": "https://attacker.example/cb?code=x"}),
    ),
    "smart-launch-04": edit_json(
        _CODE, lambda b: {**b, "scope": b.get("scope", "") + " offline_access"}
    ),
    "smart-launch-05": _accepts_anyway(_CODE),
    "smart-refresh-01": _accepts_anyway(
        lambda r: _TOKEN(r) and _form(r).get("grant_type") == "refresh_token"
    ),
    "smart-introspect-01": instead(
        lambda r: _is(r, "POST", "/oauth/introspect$") and _form(r).get("token") == "not-a-token",
        lambda: answer(200, {"active": True, "scope": "x"}),
    ),
    "smart-revoke-01": instead(lambda r: _is(r, "POST", "/oauth/revoke$"), lambda: answer(200, {})),
    "rest-01": after(
        lambda r: _is(r, "POST", r"/fhir/Observation$"), lambda a: _without(a, "etag")
    ),
    "rest-02": edit_json(
        lambda r: _is(r, "GET", r"/fhir/Observation/[^/]+$") and _kind(r) == "patient",
        lambda b: {**b, "valueQuantity": {**b.get("valueQuantity", {}), "value": 1}},
    ),
    "rest-03": edit_json(
        lambda r: _is(r, "GET", r"/fhir/Observation/[^/]+/_history$"),
        lambda b: {**b, "entry": list(reversed(b.get("entry", [])))},
    ),
    "rest-04": after(
        lambda r: _is(r, "PUT", r"/fhir/Observation/") and "if-match" in r.headers,
        lambda a: _status(a, 200) if a.status_code == 412 else a,
    ),
    "rest-05": after(
        lambda r: _is(r, "POST", r"/fhir/Observation$") and "if-none-exist" in r.headers,
        lambda a: _status(edited(a, lambda b: {**b, "id": b["id"] + "x"}), 201),
    ),
    "rest-06": after(lambda r: _is(r, "PUT", r"/fhir/Observation$"), lambda a: _status(a, 201)),
    "rest-07": after(
        lambda r: _is(r, "GET", r"/fhir/Observation/[^/]+$"),
        lambda a: _status(a, 404) if a.status_code == 410 else a,
    ),
    "rest-08": instead(
        lambda r: _is(r, "POST", r"/fhir/?$") and b"not-a-status" in r.content,
        lambda: answer(200, {"resourceType": "Bundle", "type": "transaction-response"}),
    ),
    "rest-09": instead(lambda r: "value-quantity=ge70" in _query(r), bundle),
    "rest-10": instead(
        lambda r: (
            "value-quantity%3Amissing=false" in _query(r)
            or "value-quantity:missing=false" in _query(r)
        ),
        bundle,
    ),
    "rest-11": edit_json(
        lambda r: _is(r, "GET", r"/fhir/Observation$") and "_count=1" in _query(r),
        lambda b: {**b, "link": [x for x in b.get("link", []) if x.get("relation") != "next"]},
    ),
    "rest-12": edit_json(
        lambda r: "_include" in _query(r),
        lambda b: {
            **b,
            "entry": [
                e for e in b.get("entry", []) if e.get("search", {}).get("mode") != "include"
            ],
        },
    ),
    "rest-13": instead(
        lambda r: _is(r, "GET", r"/fhir/NoSuchType/"),
        lambda: answer(200, {"resourceType": "OperationOutcome", "issue": []}),
    ),
    "rest-14": when(
        lambda r: "xml" in r.headers.get("accept", "") and _is(r, "GET", r"/fhir/Observation/"),
        _xml_status,
    ),
    "consent-01": instead(
        lambda r: _API_SYSTEM(r) and _is(r, "GET", r"/fhir/Observation/[^/]+$"),
        lambda: answer(200, {"resourceType": "Observation", "status": "final", "code": {}}),
    ),
    "consent-02": instead(
        lambda r: _API_SYSTEM(r) and "_has" in _query(r),
        lambda: bundle({"resourceType": "Patient", "id": "anna"}),
    ),
    "consent-03": instead(
        lambda r: _API_SYSTEM(r) and _is(r, "GET", r"/fhir/Observation/[^/]+$"),
        lambda: answer(404, {"resourceType": "OperationOutcome", "issue": []}),
    ),
    "consent-04": when(
        lambda r: _is(r, "PUT", r"/fhir/Consent/"),
        lambda r, f: answer(200, json.loads(r.content)),
    ),
    "consent-05": instead(
        lambda r: _is(r, "GET", r"/fhir/AuditEvent$") and _kind(r) == "patient", bundle
    ),
    "consent-06": instead(
        lambda r: _API_SYSTEM(r) and _is(r, "GET", r"/fhir/AuditEvent$"),
        lambda: bundle({"resourceType": "AuditEvent", "id": "x"}),
    ),
    **{
        f"profiles-0{n}": instead(
            lambda r: _is(r, "POST", r"/\$validate$"),
            lambda: answer(
                200,
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational"}],
                },
            ),
        )
        for n in (1, 2, 3, 4)
    },
    "profiles-05": when(lambda r: "_summary=count" in _query(r), _growing_count()),
}


def _without(response: httpx.Response, name: str) -> httpx.Response:
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in (name, "content-length")
    }
    return httpx.Response(response.status_code, headers=headers, content=response.content)


def _status(response: httpx.Response, status: int) -> httpx.Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return httpx.Response(status, headers=headers, content=response.content)
