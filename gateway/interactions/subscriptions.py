"""What a Subscription may say, and whose it is (the rules on writing one).

A GP system (a backend app) subscribes to changes it may see: ``criteria`` is a search of a
served type (``CarePlan?subject=Patient/x``) that must parse, of a type the app's scopes let
it read; the channel is a ``rest-hook`` to an https endpoint (or loopback, for development),
with an empty, id-only or full-resource payload. ``requested`` and ``off`` are the caller's
to set; ``active`` and ``error`` are the server's (after the handshake, after failures).
The server stamps the subscribing app on it (extension ``subscription-owner``): at every
delivery the worker asks again whether that app may see the changed resource.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.interactions.model import Context
from gateway.search.params import parse_search
from mappings.core.errors import FhirError, Forbidden, Unprocessable

__all__ = ["OWNER", "PAYLOAD", "check_subscription", "criteria_of"]

OWNER = "subscription-owner"
#: the Subscriptions Backport IG's payload content: empty, id-only, full-resource
PAYLOAD = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"
)
_CALLER_STATUSES = ("requested", "off")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def criteria_of(subscription: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(type, query) of the Subscription's criteria."""
    criteria = str(subscription.get("criteria", ""))
    resource_type, _, query = criteria.partition("?")
    return resource_type, parse_qsl(query, keep_blank_values=True)


def owner_of(context: Context, subscription: dict[str, Any]) -> str | None:
    url = context.services.care.canon.extension(OWNER)
    return next(
        (
            str(e.get("valueString"))
            for e in subscription.get("extension", [])
            if e.get("url") == url
        ),
        None,
    )


def check_subscription(context: Context, body: dict[str, Any]) -> None:
    """Refuse what a caller may not write; stamp the caller as the owner.

    A caller writes ``requested`` or ``off``; ``active`` and ``error`` are set by the server
    itself (the delivery worker, through the privileged door: no caller).
    """
    caller = context.caller
    who = getattr(caller, "who", None)
    if who is not None and body.get("status") not in _CALLER_STATUSES:
        raise Unprocessable(
            "A Subscription is requested (or off); the server makes it active or error",
            "Subscription.status",
        )
    resource_type, query = criteria_of(body)
    if resource_type not in context.services.definitions.served:
        raise Unprocessable(
            "criteria is a search of a served type: Type?params", "Subscription.criteria"
        )
    try:
        parse_search(resource_type, query, context.services.registry, strict=True)
    except FhirError as error:
        raise Unprocessable(f"criteria: {error.diagnostics}", "Subscription.criteria") from None
    channel = body.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise Unprocessable("The channel is a rest-hook", "Subscription.channel.type")
    endpoint = urlsplit(str(channel.get("endpoint", "")))
    secure = endpoint.scheme == "https" or (
        endpoint.scheme == "http" and endpoint.hostname in _LOOPBACK
    )
    if not secure or not endpoint.hostname:
        raise Unprocessable(
            "The endpoint is https (http only on loopback)", "Subscription.channel.endpoint"
        )
    payload = channel.get("payload")
    if payload not in (None, "application/fhir+json"):
        raise Unprocessable(
            "payload is application/fhir+json or absent", "Subscription.channel.payload"
        )
    if who is None:  # the server itself (the worker, the operator): the owner stays
        return
    may_read = any(
        rule.covers(resource_type, letter) for rule in who.scopes.rules for letter in "rs"
    )
    if not may_read:
        raise Forbidden(f"The app's scopes do not let it read {resource_type}")
    owner_url = context.services.care.canon.extension(OWNER)
    extensions = [e for e in body.get("extension", []) if e.get("url") != owner_url]
    extensions.append({"url": owner_url, "valueString": who.client_id})
    body["extension"] = extensions
