"""A person at a gateway's portal, over HTTP: a browser without the browser.

It keeps cookies, logs in as a person does (the portal sends it to the gateway's login
page, it fills in the form, the gateway sends it back to the portal with a code), reads
pages as text and posts the portal's forms with the form token each page carries. Used by
the tests and by ``scripts/smart_client.py portal``; the real browser tests (Chromium)
are in tests/gateway/portal/test_browser.py.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlencode, urljoin

import httpx

__all__ = ["PortalBrowser", "text_of"]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def text_of(page: str) -> str:
    """The page's text, tags (and charts) removed, spaces collapsed: what a person reads
    (a chart's numbers are in the table beside it)."""
    text = re.sub(r"<(script|style|svg)[^>]*>.*?</\1>", " ", page, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(unescape(text).split())


class PortalBrowser:
    def __init__(self, base: str, language: str = "nl") -> None:
        self.origin = base.rsplit("/fhir", 1)[0]
        self.http = httpx.Client(
            base_url=self.origin,
            follow_redirects=False,
            timeout=60,
            headers={"Accept-Language": language},
        )

    def close(self) -> None:
        self.http.close()

    def login(self, username: str, password: str) -> httpx.Response:
        """The whole login; the portal's answer to the callback (a 303 when it worked)."""
        start = self.http.get("/portal/login")
        if start.status_code != 303:
            raise ValueError(f"The portal did not send us to log in ({start.status_code})")
        page = self.http.get(start.headers["location"])
        sealed = re.search(r"name='request' value='([^']+)'", page.text)
        if page.status_code != 200 or sealed is None:
            raise ValueError(f"The gateway's login page did not open ({page.status_code})")
        scopes = re.findall(r"name='scope' value='([^']+)'", page.text)
        form = [
            ("request", unescape(sealed.group(1))),
            ("username", username),
            ("password", password),
            ("decision", "approve"),
            *(("scope", unescape(s)) for s in scopes),
        ]
        back = self.http.post("/oauth/authorize", content=urlencode(form), headers=_FORM)
        if back.status_code != 302:
            raise ValueError(f"The login did not succeed ({back.status_code})")
        return self.http.get(back.headers["location"])

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params)

    def follow(self, response: httpx.Response) -> httpx.Response:
        while response.status_code in (302, 303):
            response = self.http.get(urljoin(str(response.url), response.headers["location"]))
        return response

    def csrf(self, path: str = "/portal/plan") -> str:
        page = self.get(path)
        found = re.search(r"name='csrf' value='([^']+)'", page.text)
        if found is None:
            raise ValueError(f"{path} holds no form (answered {page.status_code})")
        return unescape(found.group(1))

    def post(
        self, path: str, fields: list[tuple[str, str]], *, csrf: str | None = None, **headers: str
    ) -> httpx.Response:
        token = self.csrf() if csrf is None else csrf
        body = urlencode([("csrf", token), *fields])
        return self.http.post(path, content=body, headers={**_FORM, **headers})
