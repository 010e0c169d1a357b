"""One run against one server: its options, the HTTP client, and what checks learn on the way.

Everything goes over HTTP to the base URL the integrator names; the OAuth endpoints are the
ones the server's SMART configuration announces. A transport failure or an answer that is
not FHIR is a :class:`RunError` (a check's *error*, with a plain message); what the server
says that breaks a requirement is the check's :class:`~conformance.kit.model.Failed`.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc.jwk import ECKey, RSAKey

from conformance import smart
from conformance.kit.judge import problems
from conformance.kit.model import Failed, Skipped

__all__ = ["Answer", "Options", "RunError", "Session"]

FHIR_JSON = "application/fhir+json"
#: what the client's launch asks for: their own dossier, to read and write
PATIENT_SCOPE = "openid fhirUser launch/patient offline_access patient/*.cruds"


class RunError(Exception):
    """The check could not be judged: the server cannot be reached, or did not answer FHIR."""


@dataclass(frozen=True, slots=True)
class Options:
    base_url: str
    client_id: str | None = None  # a backend app registered at the server
    keys: tuple[RSAKey | ECKey, ...] = ()  # its private keys (RS384 and/or ES384)
    patient_login: tuple[str, str] | None = None  # (username, password) of a client
    launch_client_id: str | None = None  # a public app for the standalone launch
    redirect_uri: str | None = None
    grantee: str | None = None  # the Organization/... the backend app acts for
    canonical_base: str = "https://eigendossier.nl/fhir"
    timeout: float = 20.0
    transport: httpx.BaseTransport | None = None  # another way to the server (tests, proxies)


@dataclass(slots=True)
class Answer:
    """An HTTP answer, with its JSON body when it has one."""

    status: int
    headers: httpx.Headers
    body: Any
    text: str
    url: str

    @property
    def resource_type(self) -> str | None:
        return self.body.get("resourceType") if isinstance(self.body, dict) else None

    def entries(self) -> list[dict[str, Any]]:
        if not isinstance(self.body, dict):
            return []
        return [
            e["resource"]
            for e in self.body.get("entry", [])
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]


@dataclass
class Session:
    options: Options
    http: httpx.Client = field(init=False)
    facts: dict[str, Any] = field(default_factory=dict)  # what earlier checks learned

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            timeout=self.options.timeout,
            follow_redirects=False,
            trust_env=False,
            transport=self.options.transport,
        )

    def close(self) -> None:
        self.http.close()

    @property
    def base(self) -> str:
        return self.options.base_url.rstrip("/")

    @property
    def origin(self) -> str:
        return smart.origin(self.base)

    # -- HTTP -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
        data: dict[str, str] | None = None,
    ) -> Answer:
        """One request; ``url`` relative to the FHIR base unless absolute."""
        target = url if url.startswith(("http://", "https://")) else f"{self.base}/{url}"
        sent = {"Accept": FHIR_JSON, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            content = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", FHIR_JSON)
        try:
            response = self.http.request(
                method, target, headers=sent, params=params, content=content, data=data
            )
        except httpx.TimeoutException:
            raise RunError(f"{target} did not answer within {self.options.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise RunError(f"{target} cannot be reached ({type(error).__name__})") from None
        body: Any = None
        kind = response.headers.get("content-type", "")
        if "json" in kind:
            try:
                body = response.json()
            except ValueError:
                body = None
        return Answer(response.status_code, response.headers, body, response.text, target)

    def fhir(self, method: str, path: str, **kw: Any) -> Answer:
        """A FHIR interaction: its answer must be FHIR JSON (a resource), else RunError."""
        answer = self.request(method, path, **kw)
        if answer.status in (204, 304) or (method == "HEAD"):
            return answer
        if not isinstance(answer.body, dict) or "resourceType" not in answer.body:
            kind = answer.headers.get("content-type", "no content type") or "no content type"
            raise RunError(
                f"{method} {path} answered {answer.status} with {kind.split(';')[0]}, "
                "not a FHIR JSON resource"
            )
        return answer

    def valid(self, resource: Any, where: str) -> None:
        """Fail unless ``resource`` is valid R4 by HL7's JSON schema and fhir.resources."""
        found = problems(resource)
        if found:
            raise Failed(f"{where} is not valid FHIR R4: " + "; ".join(found[:3]))

    # -- SMART --------------------------------------------------------------------------

    def smart_configuration(self) -> dict[str, Any]:
        if "smart" not in self.facts:
            answer = self.request("GET", ".well-known/smart-configuration")
            if answer.status != 200 or not isinstance(answer.body, dict):
                raise RunError(
                    f"GET .well-known/smart-configuration answered {answer.status}, "
                    "not a JSON document"
                )
            self.facts["smart"] = answer.body
        found: dict[str, Any] = self.facts["smart"]
        return found

    def endpoint(self, name: str) -> str:
        url = self.smart_configuration().get(name)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Skipped(f"the SMART configuration names no {name}")
        return url

    def key(self, algorithm: str | None = None) -> RSAKey | ECKey:
        if not self.options.client_id or not self.options.keys:
            raise Skipped("needs a backend app: --client-id and --key")
        for key in self.options.keys:
            if algorithm is None or _algorithm(key) == algorithm:
                return key
        raise Skipped(f"needs a {algorithm} key of the backend app (--key)")

    def assertion(self, key: RSAKey | ECKey, **kw: Any) -> str:
        assert self.options.client_id is not None
        kw.setdefault("aud", self.endpoint("token_endpoint"))
        return smart.assertion(self.base, self.options.client_id, key, **kw)

    def backend_request(self, assertion: str, scope: str = "system/*.rs") -> Answer:
        return self.request(
            "POST",
            self.endpoint("token_endpoint"),
            headers={"Accept": "application/json"},
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": smart.ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )

    def backend_token(self) -> str:
        """An access token of the backend app (asked once per run)."""
        if "backend_token" not in self.facts:
            key = self.key()
            answer = self.backend_request(self.assertion(key))
            token = answer.body.get("access_token") if isinstance(answer.body, dict) else None
            if answer.status != 200 or not token:
                raise Skipped(f"the backend app gets no token ({answer.status})")
            self.facts["backend_token"] = str(token)
        return str(self.facts["backend_token"])

    def launch_client(self) -> tuple[str, str]:
        """(client_id, redirect_uri) of the public app the standalone launch uses."""
        if not self.options.launch_client_id or not self.options.redirect_uri:
            raise Skipped("needs a public app for the launch: --launch-client-id, --redirect-uri")
        return self.options.launch_client_id, self.options.redirect_uri

    def authorize(
        self,
        scope: str,
        *,
        challenge: str,
        method: str = "S256",
        state: str | None = None,
        grant: list[str] | None = None,
        redirect_uri: str | None = None,
    ) -> Answer:
        """The person logs in and approves on the server's login page (as a browser
        would); the server's last answer (a redirect back to the app, or a page)."""
        if self.options.patient_login is None:
            raise Skipped("needs a client's login: --patient-login user:password-file")
        client_id, redirect = self.launch_client()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri or redirect,
            "scope": scope,
            "state": state or secrets.token_urlsafe(12),
            "aud": self.base,
            "code_challenge": challenge,
            "code_challenge_method": method,
        }
        page = self.request(
            "GET", self.endpoint("authorization_endpoint"), params=params, headers={"Accept": "*/*"}
        )
        if page.status != 200:
            return page
        sealed = re.search(r"name='request' value='([^']+)'", page.text)
        if sealed is None:
            raise Skipped("the login page is not one the kit can fill in")
        username, password = self.options.patient_login
        form = [
            ("request", unescape(sealed.group(1))),
            ("username", username),
            ("password", password),
            ("decision", "approve"),
            *(("scope", s) for s in (grant if grant is not None else scope.split())),
        ]
        return self.request(
            "POST",
            self.endpoint("authorization_endpoint"),
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"},
        )

    def code_of(self, answer: Answer) -> tuple[str, str | None]:
        if answer.status not in (302, 303):
            raise Failed(f"the login did not redirect back to the app ({answer.status})")
        query = parse_qs(urlsplit(answer.headers.get("location", "")).query)
        if "code" not in query:
            raise Failed(f"no code in the redirect: {query.get('error', ['?'])[0]}")
        states = query.get("state")
        return query["code"][0], states[0] if states else None

    def exchange(self, code: str, verifier: str, **extra: str) -> Answer:
        client_id, redirect = self.launch_client()
        form = smart.code_form(client_id, code, verifier, redirect, **extra)
        return self.request(
            "POST",
            self.endpoint("token_endpoint"),
            data=form,
            headers={"Accept": "application/json"},
        )

    def launch(self, scope: str = PATIENT_SCOPE) -> dict[str, Any]:
        """The whole standalone launch: the token response (asked once per scope)."""
        cache = f"launch:{scope}"
        if cache not in self.facts:
            verifier, challenge = smart.pkce()
            code, _ = self.code_of(self.authorize(scope, challenge=challenge))
            answer = self.exchange(code, verifier)
            if answer.status != 200 or not isinstance(answer.body, dict):
                raise Failed(f"the code was not exchanged for a token ({answer.status})")
            self.facts[cache] = answer.body
        found: dict[str, Any] = self.facts[cache]
        return found

    def patient(self) -> tuple[str, str]:
        """(access token, patient id) of the client's login."""
        body = self.launch()
        if not body.get("patient"):
            raise Failed("the token response names no patient for a patient-level launch")
        return str(body["access_token"]), str(body["patient"])


def _algorithm(key: RSAKey | ECKey) -> str:
    return "RS384" if isinstance(key, RSAKey) else "ES384"
