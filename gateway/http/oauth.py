"""The OAuth and SMART endpoints at the HTTP edge: discovery, authorize, token, and friends.

All logic is in :class:`consent.oauth.AuthorizationServer`; this module reads forms,
renders the login-and-approve page, and returns JSON with ``Cache-Control: no-store``.
Password hashing and key checks run off the event loop.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from consent.context import Kind
from consent.federation import FederationError
from consent.oauth import (
    MANAGE_LIFETIME,
    PENDING_LIFETIME,
    AuthorizeError,
    LoginFailed,
    OAuthResponse,
    Pending,
)
from consent.registry import Account, App, Authorization
from consent.tokens import InvalidToken
from gateway.http.pages import grants_page, login_page, manage_login_page, message_page
from gateway.http.texts import Texts, texts_for
from gateway.security import Security

__all__ = ["oauth_routes"]

_MAX_FORM = 64 * 1024
_BROWSER_COOKIE = "eigendossier_login"
_MANAGE_COOKIE = "eigendossier_manage"


def _json(result: OAuthResponse) -> Response:
    return Response(
        orjson.dumps(result.body),
        status_code=result.status,
        headers=result.headers,
        media_type="application/json",
    )


def _error(status: int, error: str, description: str) -> Response:
    return _json(OAuthResponse(status, {"error": error, "error_description": description}))


async def _form(request: Request) -> dict[str, str] | Response:
    """The urlencoded form of a POST; an OAuth error response when there is none."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return _error(400, "invalid_request", "The body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return _error(413, "invalid_request", "The form is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return _error(400, "invalid_request", "The form is not UTF-8")
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form and key != "scope":
            return _error(400, "invalid_request", f"{key} is repeated")
        form[key] = value if key not in form else f"{form[key]} {value}"
    return form


class _Endpoints:
    """The handlers; each delegates to the authorization server."""

    def __init__(self, security: Security) -> None:
        self.security = security
        self.server = security.server

    async def smart_configuration(self, request: Request) -> Response:
        return _json(OAuthResponse(200, self.server.smart_configuration(), {}))

    async def openid_configuration(self, request: Request) -> Response:
        return _json(OAuthResponse(200, self.server.openid_configuration(), {}))

    async def jwks(self, request: Request) -> Response:
        return _json(OAuthResponse(200, self.server.jwks(), {}))

    async def authorize(self, request: Request) -> Response:
        texts = _texts(request)
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            form = await _form(request)
            if isinstance(form, Response):
                return form
            if "request" in form:
                return await self._decide(form, texts)
            params = form
        try:
            pending = await run_in_threadpool(self.server.check_authorization_request, params)
        except AuthorizeError as error:
            if error.redirect:
                return RedirectResponse(error.redirect, status_code=302)
            return message_page(texts, "cannot_sign_in", error.description, 400)
        return login_page(texts, self.server.seal(pending), pending, provider=self.server.provider)

    async def _decide(self, form: dict[str, str], texts: Texts) -> Response:
        try:
            pending = self.server.unseal(form["request"])
        except AuthorizeError as error:
            return message_page(texts, "start_again", error.description, 400)
        if form.get("decision") == "deny":
            return RedirectResponse(self.server.refuse(pending), status_code=302)
        granted = form.get("scope", "").split()
        if form.get("decision") == "external" and self.server.provider is not None:
            return await self._federated_start(pending, granted, texts)
        try:
            account = await run_in_threadpool(
                self.server.login, form.get("username", ""), form.get("password", "")
            )
        except LoginFailed:
            message = texts.t("login_failed")
            return login_page(texts, form["request"], pending, message, self.server.provider)
        target = await run_in_threadpool(self.server.approve, pending, account, granted)
        return RedirectResponse(target, status_code=302)

    async def _federated_start(
        self, pending: Pending | None, granted: list[str], texts: Texts
    ) -> Response:
        """To the external provider, for an app's request or (``pending`` None) to manage."""
        try:
            target, browser_key = await run_in_threadpool(
                self.server.federated_start, pending, granted
            )
        except FederationError as error:
            return message_page(texts, "other_way", error.description, 502)
        response = RedirectResponse(target, status_code=302)
        self._cookie(response, _BROWSER_COOKIE, browser_key, PENDING_LIFETIME, "/oauth/callback")
        return response

    def _cookie(
        self, response: Response, name: str, value: str, lifetime: dt.timedelta, path: str
    ) -> None:
        """A cookie for this browser only: HttpOnly, Secure over https, and SameSite=Lax,
        so that it comes along when the external provider sends the person back."""
        response.set_cookie(
            name,
            value,
            max_age=int(lifetime.total_seconds()),
            path=path,
            secure=urlsplit(self.server.oauth_base).scheme == "https",
            httponly=True,
            samesite="lax",
        )

    async def callback(self, request: Request) -> Response:
        """Where the external provider sends the person back after logging in."""
        texts = _texts(request)
        params = dict(request.query_params)
        browser_key = request.cookies.get(_BROWSER_COOKIE)
        try:
            target = await run_in_threadpool(self.server.federated_finish, params, browser_key)
        except AuthorizeError as error:
            # not this browser's login: its own login (and cookie) stays as it was
            return message_page(texts, "start_again", error.description, 400)
        except FederationError as error:
            response: Response = message_page(
                texts, "login_unsuccessful", error.description, error.status
            )
        else:
            if isinstance(target, Account):  # logged in to manage their authorizations
                response = await self._start_managing(target)
            else:
                response = RedirectResponse(target, status_code=302)
        response.delete_cookie(_BROWSER_COOKIE, path="/oauth/callback")
        return response

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        if isinstance(form, Response):
            return form
        result = await run_in_threadpool(
            self.server.token, form, request.headers.get("authorization")
        )
        return _json(result)

    async def introspect(self, request: Request) -> Response:
        form = await _form(request)
        if isinstance(form, Response):
            return form
        return _json(
            await run_in_threadpool(
                self.server.introspect, form, request.headers.get("authorization")
            )
        )

    async def revoke(self, request: Request) -> Response:
        form = await _form(request)
        if isinstance(form, Response):
            return form
        return _json(
            await run_in_threadpool(self.server.revoke, form, request.headers.get("authorization"))
        )

    async def register(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        try:
            claims = await run_in_threadpool(self.server.verify_access_token, value.strip())
        except InvalidToken:
            response = _error(401, "invalid_token", "An administrator's bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        if scheme.lower() != "bearer" or claims.get("kind") != Kind.ADMIN:
            return _error(403, "insufficient_scope", "Only administrators register apps")
        body = await request.body()
        if len(body) > _MAX_FORM:
            return _error(413, "invalid_client_metadata", "The metadata is too large")
        try:
            metadata: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_client_metadata", "The body is not JSON")
        return _json(await run_in_threadpool(self.server.register, metadata))

    async def manage(self, request: Request) -> Response:
        """Where a person sees the apps they allowed and withdraws them (SMART management).

        A login (password, or the external provider) gives this browser a short-lived
        session cookie; every change posts the session's form token back, so another site
        cannot make the browser withdraw anything.
        """
        texts = _texts(request)
        session = request.cookies.get(_MANAGE_COOKIE)
        if request.method == "GET":
            try:
                account, form_token = await run_in_threadpool(self.server.managing, session)
            except InvalidToken:
                return self._manage_login(texts)
            return await self._manage_listing(account, form_token, texts)
        form = await _form(request)
        if isinstance(form, Response):
            return form
        action = form.get("action", "")
        if action == "external" and self.server.provider is not None:
            return await self._federated_start(None, [], texts)
        if action == "login":
            try:
                account = await run_in_threadpool(
                    self.server.login, form.get("username", ""), form.get("password", "")
                )
            except LoginFailed:
                return self._manage_login(texts, texts.t("manage_failed"), 401)
            return await self._start_managing(account)
        try:
            account, form_token = await run_in_threadpool(self.server.managing, session)
        except InvalidToken:
            return self._manage_login(texts, texts.t("manage_again"), 401)
        if not hmac.compare_digest(form.get("form", ""), form_token):
            return message_page(texts, "manage_title", texts.t("form_expired"), 403)
        if action == "withdraw":
            await run_in_threadpool(self.server.withdraw, account, form.get("authorization", ""))
            return RedirectResponse(self.server.manage_uri, status_code=303)
        if action == "logout":
            assert session is not None
            await run_in_threadpool(self.server.end_manage_session, session)
            response = RedirectResponse(self.server.manage_uri, status_code=303)
            response.delete_cookie(_MANAGE_COOKIE, path="/oauth/manage")
            return response
        return message_page(texts, "manage_title", texts.t("unknown_action"), 400)

    async def _start_managing(self, account: Account) -> Response:
        session = await run_in_threadpool(self.server.manage_session, account)
        response = RedirectResponse(self.server.manage_uri, status_code=303)
        self._cookie(response, _MANAGE_COOKIE, session, MANAGE_LIFETIME, "/oauth/manage")
        return response

    def _manage_login(self, texts: Texts, message: str = "", status: int = 200) -> HTMLResponse:
        return manage_login_page(texts, self.server.provider, message, status)

    async def _manage_listing(
        self, account: Account, form_token: str, texts: Texts
    ) -> HTMLResponse:
        store = self.security.store

        def grants() -> list[tuple[Authorization, App | None]]:
            return [(g, store.app(g.client_id)) for g in store.authorizations_of(account.username)]

        return grants_page(texts, await run_in_threadpool(grants), form_token)

    async def authorizations(self, request: Request) -> Response:
        """A person's apps as JSON, for an app of their own (the portal), by bearer token;
        ``DELETE /oauth/authorizations/{id}`` withdraws one (204), at once."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = _error(401, "invalid_token", "A bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="eigendossier"'
            return response
        try:
            if request.method == "DELETE":
                withdrawn = await run_in_threadpool(
                    self.server.withdraw_by_token, token.strip(), request.path_params["id"]
                )
                if not withdrawn:
                    return _error(404, "invalid_request", "No such authorization of yours")
                return Response(status_code=204, headers={"Cache-Control": "no-store"})
            listed = await run_in_threadpool(self.server.authorizations_by_token, token.strip())
        except InvalidToken:
            response = _error(401, "invalid_token", "The access token is not valid")
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="eigendossier", error="invalid_token"'
            )
            return response
        return _json(OAuthResponse(200, {"authorizations": listed}))


def _texts(request: Request) -> Texts:
    return texts_for(request.headers.get("accept-language"))


def oauth_routes(security: Security, mount: str) -> list[Route]:
    """The discovery documents under the FHIR base, and the OAuth endpoints under /oauth."""
    handlers = _Endpoints(security)
    base = f"{mount}/.well-known"
    return [
        Route(f"{base}/smart-configuration", handlers.smart_configuration, methods=["GET"]),
        Route(f"{base}/openid-configuration", handlers.openid_configuration, methods=["GET"]),
        Route("/oauth/jwks", handlers.jwks, methods=["GET"]),
        Route("/oauth/authorize", handlers.authorize, methods=["GET", "POST"]),
        Route("/oauth/callback", handlers.callback, methods=["GET"]),
        Route("/oauth/token", handlers.token, methods=["POST"]),
        Route("/oauth/introspect", handlers.introspect, methods=["POST"]),
        Route("/oauth/revoke", handlers.revoke, methods=["POST"]),
        Route("/oauth/register", handlers.register, methods=["POST"]),
        Route("/oauth/manage", handlers.manage, methods=["GET", "POST"]),
        Route("/oauth/authorizations", handlers.authorizations, methods=["GET"]),
        Route("/oauth/authorizations/{id:str}", handlers.authorizations, methods=["DELETE"]),
    ]
