"""Shared pieces of the interactions: checks on type, id and body; response headers."""

from __future__ import annotations

import datetime as dt
import re
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

import orjson

from consent.policy import check_consent
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.store.repository import Stored
from mappings.core.errors import Invalid, Issue, NotFound, Unprocessable, operation_outcome
from mappings.nl.identifiers import identifier_issues

__all__ = [
    "MAX_VERSION",
    "version_number",
    "ID_PATTERN",
    "check_id",
    "check_type",
    "loads",
    "parse_etag",
    "stored_response",
    "validated",
    "version_headers",
]

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ETAG = re.compile(r'^(W/)?"([0-9]+)"$')
#: the largest version number the store can hold (a 32-bit column on PostgreSQL)
MAX_VERSION = 2**31 - 1


def check_type(context: Context, resource_type: str) -> None:
    if resource_type not in context.services.definitions.served:
        raise NotFound(f"Resource type '{resource_type[:64]}' is not served here", "resourceType")


def check_id(resource_id: str) -> None:
    if not ID_PATTERN.fullmatch(resource_id):
        raise Invalid("Not a valid resource id", "id")


def validated(
    context: Context, body: Any, resource_type: str, resource_id: str | None = None
) -> dict[str, Any]:
    """The request body as a resource of ``resource_type``, or a 400 naming every fault."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a FHIR resource")
    if body.get("resourceType") != resource_type:
        raise Invalid(f"The body's resourceType must be {resource_type}", "resourceType")
    if resource_id is not None and body.get("id") != resource_id:
        raise Invalid("The body's id must equal the id in the URL", f"{resource_type}.id")
    issues = context.services.validator.validate(body)
    if issues:
        raise Invalid(issues[0].diagnostics, issues=issues)
    issues = profile_issues(context, body)
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)
    if resource_type == "Consent":  # only Consents whose meaning we enforce are kept
        issues = check_consent(body, frozenset(context.services.definitions.served))
        if issues:
            raise Unprocessable(issues[0].diagnostics, issues=issues)
    if resource_type == "Subscription":
        from gateway.interactions.subscriptions import check_subscription  # noqa: PLC0415

        check_subscription(context, body)
    if context.caller is not None:
        context.caller.check_resource(context, body)
    return body


def profile_issues(context: Context, resource: dict[str, Any]) -> list[Issue]:
    """How ``resource`` departs from the profiles of ours it claims in ``meta.profile``,
    and from the NamingSystems we serve (a BSN passes the eleven test, an AGB code has
    eight digits, ...: every identifier with one of those systems, claimed or not).

    A profile we do not know is not checked (as the base specification allows); one of
    ours is a promise the resource must keep.
    """
    care = context.services.care
    meta = resource.get("meta")
    claimed = meta.get("profile", []) if isinstance(meta, dict) else []
    issues: list[Issue] = identifier_issues(resource)
    for profile in claimed if isinstance(claimed, list) else []:
        url = profile.split("|", 1)[0] if isinstance(profile, str) else ""
        if care.knows(url):
            issues += care.check(resource, url)
    return issues


def parse_etag(value: str | None, name: str = "If-Match") -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise Invalid(f'{name} must be an ETag such as W/"3"', name)
    version = int(match.group(2))
    if version > MAX_VERSION:
        raise Invalid(f"{name} names a version no resource can have", name)
    return version


def version_number(text: str) -> int | None:
    """A version id from a URL: ASCII digits within what the store holds; None otherwise
    (such a version cannot exist)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_VERSION else None


def http_date(micros: int) -> str:
    """An HTTP-date (whole seconds, RFC 9110) of a stored time."""
    return _http_date_of_second(micros // 1_000_000)


@lru_cache(maxsize=4096)  # the Last-Modified of resources read again and again
def _http_date_of_second(seconds: int) -> str:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return format_datetime(moment, usegmt=True)


def version_headers(version_id: int, last_updated: int) -> dict[str, str]:
    return {"ETag": f'W/"{version_id}"', "Last-Modified": http_date(last_updated)}


def stored_response(
    context: Context,
    request: FhirRequest,
    stored: Stored,
    status: int,
    *,
    outcome: str | None = None,
) -> FhirResponse:
    """The response to a write, as Prefer asks: representation (default), minimal, outcome."""
    headers = version_headers(stored.version_id, stored.last_updated)
    base = context.services.base_url
    headers["Location"] = f"{base}/{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
    preference = request.prefer.get("return", "representation")
    body: dict[str, Any] | bytes | None = stored.content
    if preference == "minimal":
        body = None
    elif preference == "OperationOutcome":
        body = operation_outcome(
            [Issue("information", "informational", outcome or "The interaction succeeded")]
        )
    return FhirResponse(status, body, headers, last_updated=stored.last_updated)


def loads(content: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(content)
    return data
