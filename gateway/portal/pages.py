"""The portal's HTML: the page frame, and small helpers every page uses.

Every value from the dossier is escaped here or in :mod:`gateway.portal.views`; the
pages carry no script and no inline style, so the Content-Security-Policy allows neither.
"""

from __future__ import annotations

import datetime as dt
import html
from zoneinfo import ZoneInfo

from starlette.responses import HTMLResponse

from gateway.portal.texts import PortalTexts

__all__ = ["e", "format_day", "format_moment", "frame", "name_of", "respond"]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
_MONTHS = {
    "nl": [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ],
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
}


def e(value: object) -> str:
    """Escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def format_day(texts: PortalTexts, value: str | dt.date | None) -> str:
    """A date in words: 1 maart 2027 / 1 March 2027 (a year or month alone as given)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if len(value) < 10:
            return value
        try:
            day = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    else:
        day = value
    return f"{day.day} {_MONTHS[texts.language][day.month - 1]} {day.year}"


def format_moment(texts: PortalTexts, value: str) -> str:
    """An instant in Amsterdam time, in words."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return format_day(texts, moment.date())
    local = moment.astimezone(AMSTERDAM)
    return f"{format_day(texts, local.date())} {local:%H:%M}"


def name_of(resource: dict[str, object] | None) -> str | None:
    """A person's or organisation's name as written in the resource."""
    if not resource:
        return None
    name = resource.get("name")
    if isinstance(name, str):
        return name
    if isinstance(name, list) and name and isinstance(name[0], dict):
        first = name[0]
        if first.get("text"):
            return str(first["text"])
        given = " ".join(str(g) for g in first.get("given", []))
        family = str(first.get("family", ""))
        return f"{given} {family}".strip() or None
    return None


_NAV = (
    ("plan", "/portal/plan"),
    ("scores", "/portal/scores"),
    ("access", "/portal/access"),
    ("log", "/portal/log"),
    ("apps", "/portal/apps"),
    ("data", "/portal/data"),
)
_NAV_SHARED = (("shared", "/portal/shared"), ("apps", "/portal/apps"))


def frame(
    texts: PortalTexts,
    title: str,
    body: str,
    *,
    current: str = "",
    person: str | None = None,
    csrf: str | None = None,
    client: bool = True,
) -> str:
    """The whole page: skip link, header with the navigation and log-out, main content."""
    nav = ""
    if person is not None:
        items = []
        for key, href in _NAV if client else _NAV_SHARED:
            here = " aria-current='page'" if key == current else ""
            items.append(f"<li><a href='{href}'{here}>{e(texts.t(f'nav_{key}'))}</a></li>")
        logout = (
            f"<form method='post' action='/portal/logout' class='logout'>"
            f"<input type='hidden' name='csrf' value='{e(csrf or '')}'>"
            f"<button type='submit'>{e(texts.t('log_out'))}</button></form>"
        )
        nav = (
            f"<p class='who'>{e(texts.t('logged_in_as', name=person))}</p>{logout}"
            f"<nav aria-label='{e(texts.t('nav'))}'><ul>{''.join(items)}</ul></nav>"
        )
    return (
        f"<!doctype html><html lang='{texts.language}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)} · {e(texts.t('portal'))}</title>"
        "<link rel='stylesheet' href='/portal/static/portal.css'></head><body>"
        f"<a class='skip' href='#main'>{e(texts.t('skip'))}</a>"
        f"<header><p class='brand'><a href='/portal'>{e(texts.t('portal'))}</a></p>{nav}"
        f"</header><main id='main'><h1>{e(title)}</h1>{body}</main></body></html>"
    )


#: The page's policy: no script at all, styles from the portal's own file, forms to itself
#: (and the gateway's own OAuth pages), no framing, no referrer leaving the page.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # so that a form post carries our Origin, not "null"
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie",
}


def respond(texts: PortalTexts, document: str, status: int = 200) -> HTMLResponse:
    headers = {**SECURITY_HEADERS, "Content-Language": texts.language}
    return HTMLResponse(document, status_code=status, headers=headers)
