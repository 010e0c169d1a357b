"""The declarations adapter as a gateway plugin: ``eigendossier declare ...`` and
``POST [base]/$declare`` (entry point ``eigendossier.plugins: declarations``)."""

from __future__ import annotations

import base64
from typing import Any

from adapters.declarations.cli import declare_commands
from adapters.declarations.declare import declare
from adapters.declarations.month import DeclarationError
from mappings.care.base import DEFAULT_CANON
from mappings.core.errors import Issue, Unprocessable, operation_outcome
from mappings.core.plugins import Dossier, Operation, OperationCall, Plugin

__all__ = ["PLUGIN", "declare_operation"]

_CONTENT_TYPE = {"wmo323": "application/xml", "aw319": "text/plain", "gds801": "application/xml"}


def _one(call: OperationCall, name: str) -> Any:
    values = call.parameters.get(name, [])
    if len(values) > 1:
        raise Unprocessable(f"$declare takes one {name}", name)
    return values[0] if values else None


def declare_operation(dossier: Dossier, call: OperationCall) -> dict[str, Any]:
    """``$declare``: the files as Binary resources in a collection Bundle, and an
    OperationOutcome of what was declared, held and refused."""
    format_code, period = _one(call, "format"), _one(call, "period")
    if not isinstance(format_code, str) or not isinstance(period, str):
        raise Unprocessable("$declare takes format (code) and period (YYYY-MM)", "format")
    payer, dry_run = _one(call, "payer"), _one(call, "dry-run")
    dry_run = {"true": True, "false": False}.get(dry_run, dry_run)  # in a query: a string
    if payer is not None and not isinstance(payer, str):
        raise Unprocessable("payer is a string: a CBS municipality code or UZOVI number", "payer")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise Unprocessable("dry-run is a boolean", "dry-run")
    try:
        result = declare(dossier, format_code, period, payer=payer, dry_run=bool(dry_run))
    except DeclarationError as error:
        issues = [
            Issue("error", "business-rule", f"{f.rule}: {f.text}", (f.where,)) for f in error.faults
        ]
        raise Unprocessable(
            f"Nothing was declared: {len(error.faults)} fault(s)", issues=issues
        ) from None
    plan = result.plan
    issues = [
        Issue(
            "information",
            "informational",
            f"{result.visits} visits; {len(plan.debits)} new line(s), {len(plan.credits)} "
            f"credit(s), {plan.unchanged} unchanged, {len(plan.held)} held"
            + ("; dry run: no Claim recorded" if result.dry_run else ""),
        ),
        *(Issue("warning", "business-rule", f.text, (f.where,)) for f in plan.held),
    ]
    entries: list[dict[str, Any]] = [{"resource": operation_outcome(issues)}]
    for message in result.messages:
        binary: dict[str, Any] = {
            "resourceType": "Binary",
            "id": message.identification.lower(),
            "meta": {
                "tag": [
                    {
                        "system": DEFAULT_CANON.code_system("declaration-format"),
                        "code": format_code,
                    }
                ]
            },
            "contentType": _CONTENT_TYPE[format_code],
        }
        if message.data is not None:
            binary["data"] = base64.b64encode(message.data).decode("ascii")
        entries.append({"fullUrl": f"urn:declaration:{message.name}", "resource": binary})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


PLUGIN = Plugin(
    name="declare",
    commands=declare_commands,
    operations=(
        Operation(
            name="declare",
            definition=DEFAULT_CANON.url("OperationDefinition", "declare"),
            scope="system/Claim.c",
            reason="declarations to payers (legal basis: the care contract)",
            run=declare_operation,
        ),
    ),
)
