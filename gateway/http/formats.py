"""Content negotiation and body parsing (FHIR R4 http.html#mime-type, formats.html).

JSON (``application/fhir+json``) is the default; XML (``application/fhir+xml``) on
``Accept`` or ``_format``. ``_pretty=true`` indents either. Bodies are parsed here, with
the size limit enforced before parsing; a body that does not parse is a 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from mappings.core.errors import Invalid, NotAcceptable, UnsupportedMediaType
from mappings.core.limits import MAX_DEPTH, too_deep
from mappings.core.xml import XmlCodec

__all__ = ["JSON", "XML", "choose_format", "parse_body", "render_body"]

JSON = "application/fhir+json"
XML = "application/fhir+xml"
_FORMAT_PARAM = {
    "json": JSON,
    "application/json": JSON,
    "application/fhir+json": JSON,
    "application/json+fhir": JSON,
    "xml": XML,
    "text/xml": XML,
    "application/xml": XML,
    "application/fhir+xml": XML,
    "application/xml+fhir": XML,
}
_ACCEPT = {**_FORMAT_PARAM, "*/*": JSON, "application/*": JSON}
_JSON_BODIES = {"application/fhir+json", "application/json", "application/json+fhir"}
_XML_BODIES = {"application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir"}
_PATCH_BODIES = {"application/json-patch+json"}
_FORM = "application/x-www-form-urlencoded"


def choose_format(accept: str | None, format_param: str | None) -> str:
    """The response media type; 406 when the client accepts none we produce."""
    if format_param:
        chosen = _FORMAT_PARAM.get(format_param.strip().split(";")[0].lower())
        if chosen is None:
            raise NotAcceptable(f"_format={format_param[:40]} is not supported", "_format")
        return chosen
    if not accept:
        return JSON
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in _ACCEPT:
            return _ACCEPT[media]
    raise NotAcceptable(
        "Accept names no format this server produces (application/fhir+json, application/fhir+xml)"
    )


def parse_body(
    content_type: str | None,
    data: bytes | bytearray,
    codec: XmlCodec,
    method: str,
    path: str = "",
) -> tuple[Any, list[tuple[str, str]]]:
    """(parsed resource or patch, form fields) of a request body.

    A form is a search's parameters (``POST [type]/_search``); anywhere else the body is a
    resource, and a form there is the wrong content type (415)."""
    if not data:
        return None, []
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _JSON_BODIES or (method == "PATCH" and media in _PATCH_BODIES):
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            if "depth" in str(error):  # orjson's own limit, beyond ours
                raise Invalid(f"The body nests deeper than {MAX_DEPTH} levels") from None
            raise Invalid("The body is not well-formed JSON") from None
        return _shallow(parsed), []
    if media in _XML_BODIES:
        return _shallow(codec.from_xml(bytes(data))), []
    if media == _FORM and method == "POST" and path.rstrip("/").endswith("_search"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("The form body is not UTF-8") from None
        return None, parse_qsl(text, keep_blank_values=True)
    raise UnsupportedMediaType(
        f"Content-Type {media[:60] or '(none)'} is not supported here; "
        "send application/fhir+json or application/fhir+xml"
        + (" (or a form to _search)" if media == _FORM else "")
    )


def _shallow(body: Any) -> Any:
    """``body``, unless it nests deeper than the limit (a 400 naming where)."""
    where = too_deep(body, str(body.get("resourceType", "$")) if isinstance(body, dict) else "$")
    if where is not None:
        raise Invalid(
            f"The body nests deeper than {MAX_DEPTH} levels of objects and arrays",
            where[:300],
        )
    return body


def render_body(
    body: dict[str, Any] | bytes, media: str, codec: XmlCodec, *, pretty: bool
) -> bytes:
    """Bytes of ``body`` in ``media``; stored JSON bytes go out untouched when they can."""
    if media == JSON and isinstance(body, bytes) and not pretty:
        return body
    if media == JSON:
        data = orjson.loads(body) if isinstance(body, bytes) else body
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 if pretty else 0)
    resource = orjson.loads(body if isinstance(body, bytes) else orjson.dumps(body))
    return codec.to_xml(resource, pretty=pretty)
