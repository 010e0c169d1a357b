"""The OAuth and SMART endpoints at the HTTP edge: discovery, authorize, token, and friends.

All logic is in :class:`consent.oauth.AuthorizationServer`; this module reads forms,
renders the login-and-approve page, and returns JSON with ``Cache-Control: no-store``.
Password hashing and key checks run off the event loop.
"""

from __future__ import annotations

import datetime as dt
import hmac
import html
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from consent.context import Kind
from consent.federation import FederationError, Provider
from consent.oauth import (
    MANAGE_LIFETIME,
    PENDING_LIFETIME,
    AuthorizeError,
    LoginFailed,
    OAuthResponse,
    Pending,
)
from consent.registry import Account
from consent.tokens import InvalidToken
from gateway.security import Security

__all__ = ["oauth_routes"]

_MAX_FORM = 64 * 1024
_BROWSER_COOKIE = "eigendossier_login"
_MANAGE_COOKIE = "eigendossier_manage"
_MANAGE_TITLE = "Your app authorizations"
_SCOPE_TEXT = {
    "openid": "know who you are (your login name)",
    "fhirUser": "know which person in the dossier you are",
    "launch/patient": "work with your dossier",
    "offline_access": "keep access until you withdraw it",
    "online_access": "keep access while you are logged in",
}


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


def _page(
    title: str, body: str, status: int = 200, form_targets: tuple[str, ...] = ()
) -> HTMLResponse:
    document = (
        "<!doctype html><html lang='nl'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;"
        "padding:0 1rem}label{display:block;margin:.4rem 0}input[type=text],"
        "input[type=password]{width:100%;padding:.4rem}.error{color:#a00}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "form-action " + " ".join(("'self'", *form_targets)),
    }
    return HTMLResponse(document, status_code=status, headers=headers)


_V1_VERBS = {"read": "read", "write": "change", "*": "read and change"}
_V2_VERBS = {"c": "create", "r": "read", "u": "change", "d": "delete", "s": "search"}


def _scope_label(scope: str) -> str:
    if scope in _SCOPE_TEXT:
        return _SCOPE_TEXT[scope]
    level, _, rest = scope.partition("/")
    kind, _, permission = rest.partition(".")
    letters, _, condition = permission.partition("?")
    what = "everything" if kind == "*" else kind
    if letters in _V1_VERBS:
        verbs = _V1_VERBS[letters]
    else:  # SMART v2: a subset of c, r, u, d, s, in that order
        words = [_V2_VERBS[c] for c in letters if c in _V2_VERBS]
        verbs = ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)
    where = f" where {condition}" if condition else ""
    return f"{verbs or letters} {what}{where} ({level})"


def _login_page(
    sealed: str, pending: Pending, message: str = "", provider: Provider | None = None
) -> HTMLResponse:
    boxes = "".join(
        f"<label><input type='checkbox' name='scope' value='{html.escape(s)}' checked> "
        f"{html.escape(_scope_label(s))} <code>{html.escape(s)}</code></label>"
        for s in pending.scopes
    )
    error = f"<p class='error' role='alert'>{html.escape(message)}</p>" if message else ""
    external = ""
    targets: tuple[str, ...] = ()
    if provider is not None:
        name = html.escape(provider.config.name)
        external = (
            f"<p>Or, without a password here: <button name='decision' value='external' "
            f"formnovalidate>Log in with {name} and allow</button></p>"
        )
        targets = tuple(provider.origins())
    body = (
        f"<p><strong>{html.escape(pending.app_name)}</strong> asks for access. "
        "Untick what you do not want to give; you can withdraw it later.</p>"
        f"{error}<form method='post'>"
        f"<input type='hidden' name='request' value='{html.escape(sealed)}'>"
        f"<fieldset><legend>What the app may do</legend>{boxes}</fieldset>"
        "<label>Login name <input type='text' name='username' autocomplete='username' "
        "required></label><label>Password <input type='password' name='password' "
        "autocomplete='current-password' required></label>"
        "<button name='decision' value='approve'>Log in and allow</button> "
        f"<button name='decision' value='deny' formnovalidate>Refuse</button>{external}</form>"
    )
    return _page("Eigen Dossier: allow access?", body, 401 if message else 200, targets)


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
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            form = await _form(request)
            if isinstance(form, Response):
                return form
            if "request" in form:
                return await self._decide(form)
            params = form
        try:
            pending = await run_in_threadpool(self.server.check_authorization_request, params)
        except AuthorizeError as error:
            if error.redirect:
                return RedirectResponse(error.redirect, status_code=302)
            return _page("This app cannot sign in", f"<p>{html.escape(error.description)}</p>", 400)
        return _login_page(self.server.seal(pending), pending, provider=self.server.provider)

    async def _decide(self, form: dict[str, str]) -> Response:
        try:
            pending = self.server.unseal(form["request"])
        except AuthorizeError as error:
            return _page("Please start again", f"<p>{html.escape(error.description)}</p>", 400)
        if form.get("decision") == "deny":
            return RedirectResponse(self.server.refuse(pending), status_code=302)
        granted = form.get("scope", "").split()
        if form.get("decision") == "external" and self.server.provider is not None:
            return await self._federated_start(pending, granted)
        try:
            account = await run_in_threadpool(
                self.server.login, form.get("username", ""), form.get("password", "")
            )
        except LoginFailed:
            message = (
                "Login failed. After five failures in a row the account is locked for "
                "fifteen minutes."
            )
            return _login_page(form["request"], pending, message, self.server.provider)
        target = await run_in_threadpool(self.server.approve, pending, account, granted)
        return RedirectResponse(target, status_code=302)

    async def _federated_start(self, pending: Pending | None, granted: list[str]) -> Response:
        """To the external provider, for an app's request or (``pending`` None) to manage."""
        try:
            target, browser_key = await run_in_threadpool(
                self.server.federated_start, pending, granted
            )
        except FederationError as error:
            return _page("Log in another way", f"<p>{html.escape(error.description)}</p>", 502)
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
        params = dict(request.query_params)
        browser_key = request.cookies.get(_BROWSER_COOKIE)
        try:
            target = await run_in_threadpool(self.server.federated_finish, params, browser_key)
        except AuthorizeError as error:
            # not this browser's login: its own login (and cookie) stays as it was
            return _page("Please start again", f"<p>{html.escape(error.description)}</p>", 400)
        except FederationError as error:
            response: Response = _page(
                "The login did not succeed",
                f"<p>{html.escape(error.description)}</p>",
                error.status,
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
        session = request.cookies.get(_MANAGE_COOKIE)
        if request.method == "GET":
            try:
                account, form_token = await run_in_threadpool(self.server.managing, session)
            except InvalidToken:
                return self._manage_login()
            return await self._manage_listing(account, form_token)
        form = await _form(request)
        if isinstance(form, Response):
            return form
        action = form.get("action", "")
        if action == "external" and self.server.provider is not None:
            return await self._federated_start(None, [])
        if action == "login":
            try:
                account = await run_in_threadpool(
                    self.server.login, form.get("username", ""), form.get("password", "")
                )
            except LoginFailed:
                return self._manage_login("Login failed.", 401)
            return await self._start_managing(account)
        try:
            account, form_token = await run_in_threadpool(self.server.managing, session)
        except InvalidToken:
            return self._manage_login("Please log in again.", 401)
        if not hmac.compare_digest(form.get("form", ""), form_token):
            return _page(_MANAGE_TITLE, "<p>This form has expired; please try again.</p>", 403)
        if action == "withdraw":
            await run_in_threadpool(self.server.withdraw, account, form.get("authorization", ""))
            return RedirectResponse(self.server.manage_uri, status_code=303)
        if action == "logout":
            assert session is not None
            await run_in_threadpool(self.server.end_manage_session, session)
            response = RedirectResponse(self.server.manage_uri, status_code=303)
            response.delete_cookie(_MANAGE_COOKIE, path="/oauth/manage")
            return response
        return _page(_MANAGE_TITLE, "<p>Unknown action.</p>", 400)

    async def _start_managing(self, account: Account) -> Response:
        session = await run_in_threadpool(self.server.manage_session, account)
        response = RedirectResponse(self.server.manage_uri, status_code=303)
        self._cookie(response, _MANAGE_COOKIE, session, MANAGE_LIFETIME, "/oauth/manage")
        return response

    def _manage_login(self, message: str = "", status: int = 200) -> HTMLResponse:
        error = f"<p class='error' role='alert'>{html.escape(message)}</p>" if message else ""
        provider = self.server.provider
        external = ""
        targets: tuple[str, ...] = ()
        if provider is not None:
            external = (
                "<form method='post'><button name='action' value='external'>Log in with "
                f"{html.escape(provider.config.name)}</button></form>"
            )
            targets = tuple(provider.origins())
        body = (
            "<p>Log in to see which apps you allowed into your dossier, and to withdraw "
            f"them.</p>{error}<form method='post'><label>Login name <input type='text' "
            "name='username' autocomplete='username' required></label><label>Password "
            "<input type='password' name='password' autocomplete='current-password' "
            f"required></label><button name='action' value='login'>Log in</button></form>"
            f"{external}"
        )
        return _page(_MANAGE_TITLE, body, status, targets)

    async def _manage_listing(self, account: Account, form_token: str) -> HTMLResponse:
        grants = await run_in_threadpool(self.security.store.authorizations_of, account.username)
        token = f"<input type='hidden' name='form' value='{html.escape(form_token)}'>"
        rows = []
        for grant in sorted(grants, key=lambda g: (g.revoked, g.created)):
            app = await run_in_threadpool(self.security.store.app, grant.client_id)
            name = html.escape(app.name if app else grant.client_id)
            what = ", ".join(html.escape(_scope_label(s)) for s in grant.scope.split())
            if grant.revoked:
                state = "<em>withdrawn</em>"
            else:
                state = (
                    f"<form method='post'>{token}<input type='hidden' name='authorization' "
                    f"value='{html.escape(grant.id)}'><button name='action' value='withdraw'>"
                    f"Withdraw {name}</button></form>"
                )
            rows.append(
                f"<li><strong>{name}</strong>, since {grant.created:%Y-%m-%d}: {what}. {state}</li>"
            )
        listing = (
            "<ul>" + "".join(rows) + "</ul>" if rows else "<p>You have not allowed any app.</p>"
        )
        body = (
            "<p>Withdrawing an app stops it at once: its tokens no longer work. What you "
            "share with care providers is set by your consents in your dossier.</p>"
            f"{listing}<form method='post'>{token}<button name='action' value='logout'>"
            "Log out</button></form>"
        )
        return _page(_MANAGE_TITLE, body)


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
    ]
