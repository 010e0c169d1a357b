"""The portal's routes: log in (SMART, PKCE), the pages, and the forms that change grants.

A session is a sealed cookie (:mod:`gateway.portal.session`) holding the person's tokens
and the form token that every POST must echo (and the request's Origin, when the browser
sends one, must be ours). An access token about to expire is refreshed with the refresh
token before the call; one the gateway refuses ends the session.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.portal import views
from gateway.portal.api import Api, ApiError, TokenRefused
from gateway.portal.grants import consent_for, describe
from gateway.portal.pages import SECURITY_HEADERS, e, frame, name_of, respond
from gateway.portal.session import Sealer
from gateway.portal.texts import PortalTexts, portal_texts
from mappings.care.base import Canon
from mappings.core.clock import Clock

__all__ = ["PORTAL_CLIENT_ID", "PortalWiring", "portal_routes"]

PORTAL_CLIENT_ID = "eigendossier-portal"
#: what the portal asks for; the login keeps what fits the person (a client's patient/
#: scopes, a network member's user/ ones)
PORTAL_SCOPES = "openid fhirUser launch/patient online_access patient/*.crus user/*.rs"
_SESSION = "eigendossier_portal"
_LOGIN = "eigendossier_portal_login"
_SESSION_LIFETIME = 8 * 3600  # at most a working day, whatever the refresh token says
_LOGIN_LIFETIME = 600
_EARLY = 30  # refresh an access token this many seconds before it expires
_MAX_FORM = 16 * 1024


@dataclass(frozen=True, slots=True)
class _Refused:
    """Why a POSTed form is not taken: the status, and the key of the text that says so."""

    status: int
    text: str


@dataclass(frozen=True, slots=True)
class PortalWiring:
    """What the portal needs of the gateway it runs in, and nothing more."""

    fhir_base: str
    oauth_base: str
    canon: Canon
    clock: Clock
    keys: Callable[[], Sequence[bytes]]  # 32-byte secrets, newest first, shared by processes
    register: Callable[[str, str, str], None]  # (client_id, redirect_uri, scopes): ensure it


@dataclass(slots=True)
class Session:
    access: str
    refresh: str
    expires: float
    user: str
    patient: str | None
    name: str
    csrf: str
    changed: bool = False

    def dump(self) -> dict[str, Any]:
        return {
            "a": self.access,
            "r": self.refresh,
            "x": self.expires,
            "u": self.user,
            "p": self.patient,
            "n": self.name,
            "c": self.csrf,
        }

    @classmethod
    def load(cls, value: dict[str, Any]) -> Session | None:
        try:
            return cls(
                str(value["a"]),
                str(value["r"]),
                float(value["x"]),
                str(value["u"]),
                str(value["p"]) if value.get("p") else None,
                str(value["n"]),
                str(value["c"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def client(self) -> bool:
        return self.patient is not None and self.user == f"Patient/{self.patient}"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _claims(id_token: str) -> dict[str, Any]:
    """The claims of the ID token the token endpoint just handed us directly (OpenID
    Connect Core 3.1.3.7: received from the token endpoint itself, over the in-process
    channel, its signature need not be checked again)."""
    try:
        payload = id_token.split(".")[1]
        found = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


class Portal:
    def __init__(self, wiring: PortalWiring) -> None:
        self.wiring = wiring
        parts = urlsplit(wiring.fhir_base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.redirect_uri = f"{self.origin}/portal/callback"
        self.secure = parts.scheme == "https"
        self.sessions = Sealer(wiring.keys, "portal-session")
        self.logins = Sealer(wiring.keys, "portal-login")
        css = resources.files("gateway.portal").joinpath("static/portal.css").read_bytes()
        self.css = css
        self.css_etag = '"' + hashlib.sha256(css).hexdigest()[:16] + '"'

    # -- plumbing ---------------------------------------------------------------------

    def api(self, request: Request) -> Api:
        address = request.client.host if request.client else None
        return Api(request.app, self.wiring.fhir_base, self.wiring.oauth_base, address)

    def _cookie(self, response: Response, name: str, value: str, path: str, age: int) -> None:
        response.set_cookie(
            name, value, max_age=age, path=path, secure=self.secure, httponly=True, samesite="lax"
        )

    def _keep(self, response: Response, session: Session) -> None:
        """The session into the browser's cookie (sealed), for the portal's paths only."""
        sealed = self.sessions.seal(session.dump(), _SESSION_LIFETIME)
        self._cookie(response, _SESSION, sealed, "/portal", _SESSION_LIFETIME)

    def _today(self) -> dt.date:
        return self.wiring.clock.now().date()

    def _session(self, request: Request) -> Session | None:
        opened = self.sessions.open(request.cookies.get(_SESSION))
        return Session.load(opened) if opened else None

    def _message(self, texts: PortalTexts, text: str, status: int) -> Response:
        body = (
            f"<p role='alert'>{e(text)}</p><p><a class='button' href='/portal/login'>"
            f"{e(texts.t('log_in'))}</a></p>"
        )
        return respond(texts, frame(texts, texts.t("portal"), body), status)

    async def _refresh(self, api: Api, session: Session) -> bool:
        status, body = await api.token_request(
            {
                "grant_type": "refresh_token",
                "refresh_token": session.refresh,
                "client_id": PORTAL_CLIENT_ID,
            }
        )
        if status != 200 or not body.get("access_token"):
            return False
        session.access = str(body["access_token"])
        session.refresh = str(body.get("refresh_token") or session.refresh)
        session.expires = time.time() + float(body.get("expires_in", 300))
        session.changed = True
        return True

    async def page(
        self,
        request: Request,
        render: Callable[[Api, PortalTexts, Session], Awaitable[Response | str | tuple[str, int]]],
        *,
        title_key: str,
        current: str,
        client_only: bool = True,
    ) -> Response:
        """A logged-in page: the session, a fresh token, the page or a clear message."""
        texts = portal_texts(request.headers.get("accept-language"))
        session = self._session(request)
        if session is None:
            return RedirectResponse("/portal/login", status_code=303)
        if client_only and not session.client:
            return RedirectResponse("/portal/shared", status_code=303)
        api = self.api(request)
        try:
            if session.expires - _EARLY < time.time() and not await self._refresh(api, session):
                raise TokenRefused
            api.token = session.access
            try:
                result = await render(api, texts, session)
            except TokenRefused:
                if not await self._refresh(api, session):
                    raise
                api.token = session.access
                result = await render(api, texts, session)
        except TokenRefused:
            response = self._message(texts, texts.t("session_over"), 401)
            response.delete_cookie(_SESSION, path="/portal")
            return response
        except ApiError as error:
            return self._message(texts, texts.t("api_error", status=str(error.status)), 502)
        finally:
            await api.close()
        status = 200
        if isinstance(result, tuple):
            result, status = result
        if isinstance(result, str):
            document = frame(
                texts,
                texts.t(title_key),
                result,
                current=current,
                person=session.name,
                csrf=session.csrf,
                client=session.client,
            )
            response = respond(texts, document, status)
        else:
            response = result
        if session.changed:
            self._keep(response, session)
        return response

    async def form(self, request: Request, session: Session) -> dict[str, list[str]] | _Refused:
        """The POSTed form when its form token and origin are this session's; else why not
        (403 another origin or an old form token, 415 not a form, 413 too large, 400 not
        UTF-8)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != self.origin:
            return _Refused(403, "form_expired")
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            return _Refused(415, "form_unreadable")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                return _Refused(413, "form_too_large")
        fields: dict[str, list[str]] = {}
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            return _Refused(400, "form_unreadable")
        for key, value in pairs:
            fields.setdefault(key, []).append(value)
        token = (fields.get("csrf") or [""])[0]
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return _Refused(403, "form_expired")
        return fields

    # -- logging in and out -----------------------------------------------------------

    async def home(self, request: Request) -> Response:
        texts = portal_texts(request.headers.get("accept-language"))
        session = self._session(request)
        if session is not None:
            target = "/portal/plan" if session.client else "/portal/shared"
            return RedirectResponse(target, status_code=303)
        notice = ""
        if request.query_params.get("bye") == "1":
            notice = f"<p role='status' class='notice'>{e(texts.t('logged_out'))}</p>"
        body = (
            f"{notice}<p>{e(texts.t('welcome_text'))}</p><p><a class='button' "
            f"href='/portal/login'>{e(texts.t('log_in'))}</a></p>"
        )
        return respond(texts, frame(texts, texts.t("welcome"), body))

    async def login(self, request: Request) -> Response:
        self.wiring.register(PORTAL_CLIENT_ID, self.redirect_uri, PORTAL_SCOPES)
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(24)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": PORTAL_CLIENT_ID,
                "redirect_uri": self.redirect_uri,
                "scope": PORTAL_SCOPES,
                "state": state,
                "aud": self.wiring.fhir_base,
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(f"{self.wiring.oauth_base}/authorize?{query}", status_code=303)
        sealed = self.logins.seal({"v": verifier, "s": state}, _LOGIN_LIFETIME)
        self._cookie(response, _LOGIN, sealed, "/portal/callback", _LOGIN_LIFETIME)
        return response

    async def callback(self, request: Request) -> Response:
        texts = portal_texts(request.headers.get("accept-language"))
        started = self.logins.open(request.cookies.get(_LOGIN))
        params = request.query_params
        if started is None or not hmac.compare_digest(
            str(started.get("s", "")).encode(), params.get("state", "").encode()
        ):
            return self._message(texts, texts.t("login_expired"), 400)
        if "error" in params:
            reason = params.get("error_description") or params.get("error", "")
            return self._message(texts, texts.t("login_failed", reason=reason[:200]), 403)
        api = self.api(request)
        try:
            status, body = await api.token_request(
                {
                    "grant_type": "authorization_code",
                    "code": params.get("code", ""),
                    "redirect_uri": self.redirect_uri,
                    "client_id": PORTAL_CLIENT_ID,
                    "code_verifier": str(started["v"]),
                }
            )
            if status != 200 or not body.get("access_token"):
                reason = str(body.get("error_description") or body.get("error") or status)
                return self._message(texts, texts.t("login_failed", reason=reason[:200]), 403)
            claims = _claims(str(body.get("id_token", "")))
            user = str(claims.get("fhirUser") or "")
            patient = str(body["patient"]) if body.get("patient") else None
            api.token = str(body["access_token"])
            # the client reads their own Patient; a network member's own RelatedPerson is
            # the client's to share, so the portal does not ask for it (it would be a refusal
            # in the client's log): their login name stands for them
            me = await api.read(user) if user.startswith("Patient/") else None
        finally:
            await api.close()
        if not user.startswith(("Patient/", "RelatedPerson/")):
            return self._message(texts, texts.t("not_for_you"), 403)
        session = Session(
            access=str(body["access_token"]),
            refresh=str(body.get("refresh_token", "")),
            expires=time.time() + float(body.get("expires_in", 300)),
            user=user,
            patient=patient,
            name=name_of(me) or str(claims.get("sub", "")),
            csrf=secrets.token_urlsafe(24),
        )
        response = RedirectResponse("/portal", status_code=303)
        self._keep(response, session)
        response.delete_cookie(_LOGIN, path="/portal/callback")
        return response

    async def logout(self, request: Request) -> Response:
        texts = portal_texts(request.headers.get("accept-language"))
        session = self._session(request)
        if session is None:
            return RedirectResponse("/portal", status_code=303)
        refused = await self.form(request, session)
        if isinstance(refused, _Refused):
            return self._message(texts, texts.t(refused.text), refused.status)
        api = self.api(request)
        try:  # ends the whole authorization: its refresh and access tokens stop working
            await api.revoke(session.refresh, PORTAL_CLIENT_ID)
        finally:
            await api.close()
        response = RedirectResponse("/portal?bye=1", status_code=303)
        response.delete_cookie(_SESSION, path="/portal")
        return response

    # -- pages ------------------------------------------------------------------------

    async def plan(self, request: Request) -> Response:
        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            return await views.plan_page(api, texts, self.wiring.canon, self._today())

        return await self.page(request, render, title_key="plan_title", current="plan")

    async def scores(self, request: Request) -> Response:
        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            assert session.patient is not None
            return await views.scores_page(api, texts, session.patient)

        return await self.page(request, render, title_key="scores_title", current="scores")

    async def shared(self, request: Request) -> Response:
        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            return await views.shared_page(
                api, texts, self.wiring.canon, self._today(), session.user
            )

        return await self.page(
            request, render, title_key="shared_title", current="shared", client_only=False
        )

    async def access(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._change_access(request)

        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            assert session.patient is not None
            return await views.access_page(
                api,
                texts,
                session.patient,
                self.wiring.canon,
                self._today(),
                session.csrf,
                change=request.query_params.get("change"),
                done=(request.query_params.get("done"), request.query_params.get("grant")),
            )

        return await self.page(request, render, title_key="access_title", current="access")

    async def _change_access(self, request: Request) -> Response:
        session = self._session(request)
        texts = portal_texts(request.headers.get("accept-language"))
        if session is None or not session.client:
            return RedirectResponse("/portal/login", status_code=303)
        fields = await self.form(request, session)
        if isinstance(fields, _Refused):
            return self._message(texts, texts.t(fields.text), fields.status)

        async def render(
            api: Api, texts: PortalTexts, session: Session
        ) -> Response | tuple[str, int]:
            assert session.patient is not None
            outcome = await self._apply(api, session.patient, fields)
            if isinstance(outcome, str):
                notice = f"<span class='error'>{e(texts.t(outcome))}</span>"
                body = await views.access_page(
                    api,
                    texts,
                    session.patient,
                    self.wiring.canon,
                    self._today(),
                    session.csrf,
                    notice=notice,
                )
                return body, 400
            done, consent = outcome  # the page names whom, from the Consent itself
            query = urlencode({"done": done, "grant": consent})
            return RedirectResponse(f"/portal/access?{query}", status_code=303)

        return await self.page(request, render, title_key="access_title", current="access")

    async def _apply(
        self, api: Api, patient: str, fields: dict[str, list[str]]
    ) -> tuple[str, str] | str:
        """Grant, change or withdraw: ('granted'|'withdrawn', the Consent's id), or why not."""
        texts_key = "bad_choice"
        action = (fields.get("action") or [""])[0]
        now = self.wiring.clock.now()
        if action == "withdraw":
            consent = await api.read(f"Consent/{(fields.get('consent') or [''])[0]}")
            if consent is None or consent.get("patient", {}).get("reference") != (
                f"Patient/{patient}"
            ):
                return texts_key
            consent["status"] = "inactive"
            status, _ = await api.write("PUT", f"Consent/{consent['id']}", consent)
            if status >= 400:
                raise ApiError(status)
            return "withdrawn", str(consent["id"])
        categories = fields.get("category", [])
        try:
            end = dt.date.fromisoformat((fields.get("end") or [""])[0])
        except ValueError:
            return texts_key
        if not categories or end < now.date() or ("all" in categories and len(categories) > 1):
            return texts_key
        plans = await api.search("CarePlan", [("_count", "200")])
        crisis = views.crisis_plan_refs(plans, self.wiring.canon)
        if action == "grant":
            actor = (fields.get("recipient") or [""])[0]
            ident = None
        elif action == "change":
            existing = await api.read(f"Consent/{(fields.get('consent') or [''])[0]}")
            if existing is None:
                return texts_key
            actors = describe(existing).actors
            if len(actors) != 1:
                return texts_key
            actor, ident = actors[0], str(existing["id"])
        else:
            return texts_key
        if actor.split("/")[0] not in ("Organization", "Practitioner", "CareTeam", "RelatedPerson"):
            return texts_key
        try:
            consent = consent_for(
                patient, actor, categories, end, crisis_plans=crisis, now=now, consent_id=ident
            )
        except ValueError:
            return texts_key
        method, path = ("PUT", f"Consent/{ident}") if ident else ("POST", "Consent")
        status, written = await api.write(method, path, consent)
        if status >= 400:
            raise ApiError(status)
        return "granted", str(written.get("id") or ident)

    async def log(self, request: Request) -> Response:
        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            assert session.patient is not None
            today = self._today()
            start = _date(request.query_params.get("from"), today - dt.timedelta(days=30))
            end = _date(request.query_params.get("to"), today)
            who = request.query_params.get("who", "others")[:300]
            return await views.log_page(api, texts, session.patient, start, end, who)

        return await self.page(request, render, title_key="log_title", current="log")

    async def apps(self, request: Request) -> Response:
        if request.method == "POST":
            session = self._session(request)
            texts = portal_texts(request.headers.get("accept-language"))
            if session is None:
                return RedirectResponse("/portal/login", status_code=303)
            fields = await self.form(request, session)
            if isinstance(fields, _Refused):
                return self._message(texts, texts.t(fields.text), fields.status)
            authorization = (fields.get("authorization") or [""])[0]

            async def withdraw(api: Api, texts: PortalTexts, session: Session) -> Response:
                await api.withdraw_authorization(authorization)
                return RedirectResponse("/portal/apps", status_code=303)

            return await self.page(
                request, withdraw, title_key="apps_title", current="apps", client_only=False
            )

        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            return await views.apps_page(api, texts, session.csrf)

        return await self.page(
            request, render, title_key="apps_title", current="apps", client_only=False
        )

    async def data(self, request: Request) -> Response:
        async def render(api: Api, texts: PortalTexts, session: Session) -> str:
            return views.data_page(texts)

        return await self.page(request, render, title_key="data_title", current="data")

    async def download(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in ("json", "html"):
            return Response(status_code=404)

        async def render(api: Api, texts: PortalTexts, session: Session) -> Response | str:
            assert session.patient is not None
            found = await views.dossier(api, session.patient)
            if kind == "json":
                bundle = {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "timestamp": self.wiring.clock.now().isoformat(timespec="seconds"),
                    "entry": [
                        {
                            "fullUrl": f"{self.wiring.fhir_base}/{r['resourceType']}/{r['id']}",
                            "resource": r,
                        }
                        for r in found
                    ],
                }
                headers = {
                    **SECURITY_HEADERS,
                    "Content-Disposition": 'attachment; filename="eigen-dossier.json"',
                }
                return Response(
                    orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
                    headers=headers,
                    media_type="application/fhir+json",
                )
            made = texts.t("record_made", date=self._today().isoformat())
            return respond(
                texts,
                frame(
                    texts,
                    texts.t("record_title", name=session.name),
                    f"<p>{e(made)}</p>{views.record_page(texts, found)}",
                ),
            )

        return await self.page(request, render, title_key="data_title", current="data")

    async def stylesheet(self, request: Request) -> Response:
        headers = {
            "Cache-Control": "public, max-age=3600",
            "ETag": self.css_etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == self.css_etag:
            return Response(status_code=304, headers=headers)
        return Response(self.css, headers=headers, media_type="text/css")


def _date(value: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        return default


def portal_routes(wiring: PortalWiring) -> list[Route]:
    portal = Portal(wiring)
    return [
        Route("/portal", portal.home, methods=["GET"]),
        Route("/portal/login", portal.login, methods=["GET"]),
        Route("/portal/callback", portal.callback, methods=["GET"]),
        Route("/portal/logout", portal.logout, methods=["POST"]),
        Route("/portal/plan", portal.plan, methods=["GET"]),
        Route("/portal/scores", portal.scores, methods=["GET"]),
        Route("/portal/shared", portal.shared, methods=["GET"]),
        Route("/portal/access", portal.access, methods=["GET", "POST"]),
        Route("/portal/log", portal.log, methods=["GET"]),
        Route("/portal/apps", portal.apps, methods=["GET", "POST"]),
        Route("/portal/data", portal.data, methods=["GET"]),
        Route("/portal/data/dossier.{kind:str}", portal.download, methods=["GET"]),
        Route("/portal/static/portal.css", portal.stylesheet, methods=["GET"]),
    ]
