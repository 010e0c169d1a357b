"""The HTML pages of the authorization server: log in and allow, and manage app grants.

Small server-rendered pages, in the request's language (:mod:`gateway.http.texts`), with a
Content-Security-Policy that allows no script, and no framing. Every value that comes from
elsewhere (app names, scopes, messages) is escaped here.
"""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

from consent.federation import Provider
from consent.oauth import Pending
from consent.registry import App, Authorization
from gateway.http.texts import Texts

__all__ = ["grants_page", "login_page", "manage_login_page", "message_page", "page"]


def page(
    texts: Texts,
    title: str,
    body: str,
    status: int = 200,
    form_targets: tuple[str, ...] = (),
) -> HTMLResponse:
    document = (
        f"<!doctype html><html lang='{texts.language}'><head><meta charset='utf-8'>"
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
        "Content-Language": texts.language,
        "Vary": "Accept-Language",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "form-action " + " ".join(("'self'", *form_targets)),
    }
    return HTMLResponse(document, status_code=status, headers=headers)


def message_page(texts: Texts, title_key: str, message: str, status: int) -> HTMLResponse:
    """A page that says one thing (``message`` is escaped)."""
    return page(texts, texts.t(title_key), f"<p>{html.escape(message)}</p>", status)


def _error(message: str) -> str:
    return f"<p class='error' role='alert'>{html.escape(message)}</p>" if message else ""


def _credentials(texts: Texts) -> str:
    return (
        f"<label>{texts.t('username')} <input type='text' name='username' "
        "autocomplete='username' required></label>"
        f"<label>{texts.t('password')} <input type='password' name='password' "
        "autocomplete='current-password' required></label>"
    )


def login_page(
    texts: Texts,
    sealed: str,
    pending: Pending,
    message: str = "",
    provider: Provider | None = None,
) -> HTMLResponse:
    boxes = "".join(
        f"<label><input type='checkbox' name='scope' value='{html.escape(s)}' checked> "
        f"{html.escape(texts.scope_label(s))} <code>{html.escape(s)}</code></label>"
        for s in pending.scopes
    )
    external = ""
    targets: tuple[str, ...] = ()
    if provider is not None:
        name = html.escape(provider.config.name)
        external = (
            f"<p>{texts.t('external_or')} <button name='decision' value='external' "
            f"formnovalidate>{texts.t('external_approve', name=name)}</button></p>"
        )
        targets = tuple(provider.origins())
    body = (
        f"<p>{texts.t('login_intro', app=html.escape(pending.app_name))}</p>"
        f"{_error(message)}<form method='post'>"
        f"<input type='hidden' name='request' value='{html.escape(sealed)}'>"
        f"<fieldset><legend>{texts.t('login_legend')}</legend>{boxes}</fieldset>"
        f"{_credentials(texts)}"
        f"<button name='decision' value='approve'>{texts.t('approve')}</button> "
        f"<button name='decision' value='deny' formnovalidate>{texts.t('refuse')}</button>"
        f"{external}</form>"
    )
    return page(texts, texts.t("login_title"), body, 401 if message else 200, targets)


def manage_login_page(
    texts: Texts, provider: Provider | None, message: str = "", status: int = 200
) -> HTMLResponse:
    external = ""
    targets: tuple[str, ...] = ()
    if provider is not None:
        name = html.escape(provider.config.name)
        external = (
            "<form method='post'><button name='action' value='external'>"
            f"{texts.t('log_in_with', name=name)}</button></form>"
        )
        targets = tuple(provider.origins())
    body = (
        f"<p>{texts.t('manage_intro')}</p>{_error(message)}<form method='post'>"
        f"{_credentials(texts)}<button name='action' value='login'>{texts.t('log_in')}"
        f"</button></form>{external}"
    )
    return page(texts, texts.t("manage_title"), body, status, targets)


def grants_page(
    texts: Texts, grants: list[tuple[Authorization, App | None]], form_token: str
) -> HTMLResponse:
    """The apps a person allowed, each with a withdraw button carrying the form token."""
    token = f"<input type='hidden' name='form' value='{html.escape(form_token)}'>"
    rows = []
    for grant, app in sorted(grants, key=lambda g: (g[0].revoked, g[0].created)):
        name = html.escape(app.name if app else grant.client_id)
        what = ", ".join(html.escape(texts.scope_label(s)) for s in grant.scope.split())
        if grant.revoked:
            state = f"<em>{texts.t('withdrawn')}</em>"
        else:
            state = (
                f"<form method='post'>{token}<input type='hidden' name='authorization' "
                f"value='{html.escape(grant.id)}'><button name='action' value='withdraw'>"
                f"{texts.t('withdraw', name=name)}</button></form>"
            )
        line = texts.t("grant_line", name=name, date=f"{grant.created:%Y-%m-%d}", what=what)
        rows.append(f"<li>{line} {state}</li>")
    listing = "<ul>" + "".join(rows) + "</ul>" if rows else f"<p>{texts.t('no_apps')}</p>"
    body = (
        f"<p>{texts.t('manage_note')}</p>{listing}<form method='post'>{token}"
        f"<button name='action' value='logout'>{texts.t('log_out')}</button></form>"
    )
    return page(texts, texts.t("manage_title"), body)
