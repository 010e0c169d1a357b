"""``POST [base]/$name``: the system-level operations of the installed plugins.

An operation of a plugin (``$declare``) acts under a legal basis other than one client's
Consent, on many dossiers at once; so its callers are few: the gateway's administrators,
and backend apps of an organisation that hold the operation's own SMART system scope
(``system/Claim.c`` for ``$declare``). The plugin gets the dossier through the privileged
door with the operation's reason, and each client whose data it touches gets an access-log
entry of its own (:mod:`gateway.interactions.dossier`).
"""

from __future__ import annotations

from typing import Any

from consent.context import Kind
from gateway.interactions.dossier import InProcessDossier
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.store.repository import Session
from mappings.core.errors import Forbidden, Invalid, NotFound
from mappings.core.plugins import Operation, OperationCall

__all__ = ["plugin_operation"]

_VALUE_KEYS = ("valueString", "valueCode", "valueBoolean", "valueInteger", "valueDate")


def _parameters(request: FhirRequest) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for name, value in request.query:
        if not name.startswith("_"):
            found.setdefault(name, []).append(value)  # the operation reads its own types
    body = request.body
    if body is None:
        return found
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise Invalid("An operation takes a Parameters resource")
    for item in body.get("parameter", []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise Invalid("Each parameter has a name", "Parameters.parameter")
        values = [item[k] for k in _VALUE_KEYS if k in item]
        if len(values) != 1:
            raise Invalid(
                f"Parameter {item['name']!r} has one value of a simple type",
                "Parameters.parameter",
            )
        found.setdefault(item["name"], []).append(values[0])
    return found


def _requester(context: Context, operation: Operation) -> str:
    caller = context.caller
    if caller is None:  # development mode (serve --open) and the operator's own commands
        return "operator"
    who = getattr(caller, "who", None)
    if who is None:
        raise Forbidden(f"${operation.name} needs an administrator or a backend app")
    if who.kind == Kind.ADMIN:
        return f"admin:{who.subject}"
    allowed = who.kind == Kind.SYSTEM and any(
        rule.level == "system" and rule.covers(*_type_and_letter(operation.scope))
        for rule in who.scopes.rules
    )
    if not allowed:
        raise Forbidden(
            f"${operation.name} needs an administrator or a backend app with {operation.scope}"
        )
    return f"client:{who.client_id}"


def _type_and_letter(scope: str) -> tuple[str, str]:
    resource, _, letters = scope.partition("/")[2].partition(".")
    return resource, letters[:1]


def plugin_operation(context: Context, request: FhirRequest, session: Session) -> FhirResponse:
    name = request.path.strip("/").lstrip("$")
    operation = context.services.operations.get(name)
    if operation is None:
        raise NotFound(f"No operation ${name[:40]} on this server")
    requester = _requester(context, operation)
    call = OperationCall(_parameters(request), requester, context.services.base_url)
    dossier = InProcessDossier(
        context.services,
        operation.reason,
        source=operation.name,
        requester=requester,
        router=context.router,
    )
    return FhirResponse(200, operation.run(dossier, call))
