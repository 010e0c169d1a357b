"""capabilities and ``$validate``.

The CapabilityStatement is generated from the routing table and the search registry: it
lists exactly the interactions routed and the parameters indexed, nothing more.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from gateway.interactions.common import check_type, profile_issues
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.store.repository import Session
from mappings.core.clock import format_instant
from mappings.core.errors import Invalid, Issue, operation_outcome
from mappings.core.uris import FHIR_VERSION

__all__ = ["capabilities", "validate"]


def _version() -> str:
    try:
        return version("eigendossier")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


SOFTWARE = {"name": "Eigen Dossier", "version": _version()}
_CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
_VALIDATE_OP = "http://hl7.org/fhir/OperationDefinition/Resource-validate"
_SYSTEM = {"transaction", "search-system", "history-system"}
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
#: operations defined elsewhere: their canonical URLs, per type (None: system level)
_EXTERNAL = {
    ("export", None): f"{_BULK}/export",
    ("export", "Patient"): f"{_BULK}/patient-export",
    ("export", "Group"): f"{_BULK}/group-export",
}


def _resource_entry(context: Context, resource_type: str) -> dict[str, Any]:
    registry = context.services.registry
    routes = [r for r in context.router.routes if r.type_level and r.supports(resource_type)]
    names = list(dict.fromkeys(r.name for r in routes if not r.name.startswith("$")))
    care = context.services.care
    operations = [{"name": "validate", "definition": _VALIDATE_OP}]
    operations += [
        {
            "name": code,
            "definition": _EXTERNAL.get(
                (code, resource_type), care.canon.url("OperationDefinition", code)
            ),
        }
        for code in dict.fromkeys(r.name[1:] for r in routes if r.on == resource_type)
    ]
    params = sorted(registry.by_type.get(resource_type, {}).values(), key=lambda p: p.code)
    references = [p.code for p in params if p.type == "reference"]
    entry: dict[str, Any] = {
        "type": resource_type,
        "profile": f"{_CORE_SD}{resource_type}",
        "interaction": [{"code": n} for n in names],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": "update" in names,
        "conditionalCreate": "create" in names,
        "conditionalRead": "not-supported",
        "conditionalUpdate": "update" in names,
        "conditionalDelete": "single" if "delete" in names else "not-supported",
        "referencePolicy": ["literal", "local"],
        "searchInclude": [f"{resource_type}:{c}" for c in references],
        "searchRevInclude": sorted(
            f"{t}:{p.code}"
            for t, ps in registry.by_type.items()
            for p in ps.values()
            if p.type == "reference" and (not p.targets or resource_type in p.targets)
        ),
        "searchParam": [{"name": p.code, "definition": p.url, "type": p.type} for p in params],
        "operation": operations,
    }
    profiles = [
        r["url"]
        for r in care.resources
        if r["resourceType"] == "StructureDefinition" and r["type"] == resource_type
    ]
    if profiles:
        entry["supportedProfile"] = profiles
    return entry


def capabilities(context: Context, request: FhirRequest, session: Session) -> FhirResponse:
    routes = context.router.routes
    system = [n for n in dict.fromkeys(r.name for r in routes) if n in _SYSTEM] + ["batch"]
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(context.services.clock.now()),
        "publisher": "Eigen Dossier",
        "kind": "instance",
        "software": SOFTWARE,
        "implementation": {
            "description": "Eigen Dossier gateway",
            "url": context.services.base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Search: token, string, date, reference (with chaining and _has), quantity, "
                    "number, uri and composite (token and one value) parameters of the R4 "
                    "definitions; special "
                    "parameters, _text, _content, _list and _query are not supported. "
                    "Patch: JSON Patch only."
                ),
                "resource": [
                    _resource_entry(context, t) for t in sorted(context.services.definitions.served)
                ],
                "interaction": [{"code": n} for n in system],
                "operation": [
                    {"name": "validate", "definition": _VALIDATE_OP},
                    {"name": "export", "definition": _EXTERNAL[("export", None)]},
                    *(
                        {"name": op.name, "definition": op.definition}
                        for op in context.services.operations.values()
                    ),
                ],
            }
        ],
    }
    oauth = context.services.oauth_base
    if oauth:  # SMART discovery is .well-known/smart-configuration; older clients read this
        statement["rest"][0]["security"] = {
            "cors": True,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "description": "SMART on FHIR; the client's Consent resources decide access",
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": name, "valueUri": f"{oauth}/{name}"}
                        for name in (
                            "authorize",
                            "token",
                            "register",
                            "manage",
                            "introspect",
                            "revoke",
                        )
                    ],
                }
            ],
        }
    return FhirResponse(200, statement)


def _validate_input(request: FhirRequest) -> tuple[Any, str | None, str | None]:
    body = request.body
    mode = profile = None
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        resource = None
        for parameter in body.get("parameter", []):
            name = parameter.get("name") if isinstance(parameter, dict) else None
            if name == "resource":
                resource = parameter.get("resource")
            elif name == "mode":
                mode = parameter.get("valueCode")
            elif name == "profile":
                profile = parameter.get("valueUri") or parameter.get("valueCanonical")
        body = resource
    for name, value in request.query:
        mode = value if name == "mode" else mode
        profile = value if name == "profile" else profile
    return body, mode, profile


def _claimed(resource: Any) -> set[str]:
    """The profiles ``resource`` claims in ``meta.profile`` (without versions)."""
    meta = resource.get("meta") if isinstance(resource, dict) else None
    claimed = meta.get("profile", []) if isinstance(meta, dict) else []
    return {str(p).split("|", 1)[0] for p in claimed if isinstance(p, str)}


def validate(
    context: Context,
    request: FhirRequest,
    session: Session,
    resource_type: str,
    resource_id: str | None = None,
) -> FhirResponse:
    """``$validate``: an OperationOutcome listing every fault (200 when validation ran)."""
    check_type(context, resource_type)
    resource, mode, profile = _validate_input(request)
    if mode not in (None, "create", "update", "delete"):
        raise Invalid("mode must be create, update or delete", "mode")
    issues: list[Issue] = []
    if mode != "delete":
        if not isinstance(resource, dict):
            raise Invalid("$validate needs a resource")
        if resource.get("resourceType") != resource_type:
            issues.append(
                Issue(
                    "error", "invalid", f"resourceType must be {resource_type}", ("resourceType",)
                )
            )
        else:
            issues += context.services.validator.validate(resource)
            issues += profile_issues(context, resource)  # the profiles it claims, as a write
        if mode == "update" and resource.get("id") != resource_id:
            issues.append(
                Issue(
                    "error",
                    "invalid",
                    "The id must equal the id in the URL",
                    (f"{resource_type}.id",),
                )
            )
    care = context.services.care
    claimed = _claimed(resource)
    if profile and care.knows(profile.split("|", 1)[0]):
        url = profile.split("|", 1)[0]
        if (
            isinstance(resource, dict)
            and resource.get("resourceType") == resource_type
            and url not in claimed
        ):
            issues += care.check(resource, url)
    elif profile and profile != f"{_CORE_SD}{resource_type}":
        issues.append(
            Issue("error", "not-supported", f"Profile {profile[:200]} is not known to this server")
        )
    if (
        mode == "delete"
        and resource_id is not None
        and session.current(resource_type, resource_id, context.access) is None
    ):
        issues.append(Issue("error", "not-found", f"{resource_type}/{resource_id} is not known"))
    return FhirResponse(200, operation_outcome(issues))
