"""``capabilities``: what the server says it is, before anyone logs in."""

from __future__ import annotations

from typing import Any

from conformance.kit.model import FHIR, OURS, SMART, Failed, check, expect
from conformance.kit.session import Session
from mappings.core.errors import Invalid
from mappings.core.xml import parse_hardened

#: the checks join the catalogue when this module is imported; nothing is imported from it
__all__: list[str] = []

_PROFILES = ("zrm-observation", "krachtplan", "crisisplan", "visit")
_OPERATIONS = ("zrm-progress", "summary", "explain", "break-the-glass")
_REQUIRED = (
    "token_endpoint",
    "capabilities",
    "code_challenge_methods_supported",
    "grant_types_supported",
)
_REQUIRED_FOR_LAUNCH = ("authorization_endpoint",)
_RECOMMENDED = (
    "issuer",
    "jwks_uri",
    "scopes_supported",
    "response_types_supported",
    "management_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "token_endpoint_auth_methods_supported",
)
_BACKEND = ("token_endpoint_auth_signing_alg_values_supported",)
_XHTML = "{http://hl7.org/fhir}"


def capability(session: Session) -> dict[str, Any]:
    if "capability" not in session.facts:
        answer = session.fhir("GET", "metadata")
        expect(answer.status == 200, f"GET metadata answered {answer.status}")
        expect(
            answer.resource_type == "CapabilityStatement",
            f"GET metadata answered a {answer.resource_type}, not a CapabilityStatement",
        )
        session.facts["capability"] = answer.body
    found: dict[str, Any] = session.facts["capability"]
    return found


@check(
    "cap-01",
    "The CapabilityStatement is served without a token and is valid R4",
    requirement="GET [base]/metadata returns the server's CapabilityStatement",
    link=f"{FHIR}/http.html#capabilities",
    inputs="the base URL",
    asserts="200, resourceType CapabilityStatement, valid by HL7's JSON schema and fhir.resources",
)
def capability_statement(session: Session) -> None:
    session.valid(capability(session), "The CapabilityStatement")


@check(
    "cap-02",
    "FHIR version 4.0.1",
    requirement="The server implements FHIR R4 (4.0.1)",
    link=f"{FHIR}/capabilitystatement-definitions.html#CapabilityStatement.fhirVersion",
    inputs="the CapabilityStatement",
    asserts="fhirVersion is 4.0.1",
    needs=("cap-01",),
)
def fhir_version(session: Session) -> None:
    found = capability(session).get("fhirVersion")
    expect(found == "4.0.1", f"fhirVersion is {found!r}, not 4.0.1")


@check(
    "cap-03",
    "JSON and XML are both offered",
    requirement="Eigen Dossier serves application/fhir+json and application/fhir+xml",
    link="README.md#what-the-fhir-api-does",
    inputs="the CapabilityStatement",
    asserts="format names json and xml (or their MIME types)",
    needs=("cap-01",),
)
def formats(session: Session) -> None:
    offered = {str(f).split(";")[0] for f in capability(session).get("format", [])}
    expect(offered & {"json", "application/fhir+json"}, f"no JSON format in {sorted(offered)}")
    expect(offered & {"xml", "application/fhir+xml"}, f"no XML format in {sorted(offered)}")


@check(
    "cap-04",
    "Our care profiles are supported",
    requirement="A gateway supports the profiles ZRM observation, krachtplan, crisis plan and "
    "visit (docs/mappings.md)",
    link=f"{OURS}/mappings.md",
    inputs="the CapabilityStatement; --canonical-base (default https://eigendossier.nl/fhir)",
    asserts="each profile's canonical URL is in some rest.resource.supportedProfile",
    needs=("cap-01",),
)
def profiles(session: Session) -> None:
    supported = {
        str(p)
        for rest in capability(session).get("rest", [])
        for resource in rest.get("resource", [])
        for p in resource.get("supportedProfile", [])
    }
    base = session.options.canonical_base.rstrip("/")
    missing = [p for p in _PROFILES if f"{base}/StructureDefinition/{p}" not in supported]
    expect(not missing, f"not in supportedProfile: {', '.join(missing)}")


@check(
    "cap-05",
    "Our operations are declared",
    requirement="A gateway offers $zrm-progress, $summary, Consent/$explain and $break-the-glass",
    link="README.md#granting-access",
    inputs="the CapabilityStatement",
    asserts="each is named in rest.operation or a resource's operation",
    needs=("cap-01",),
)
def operations(session: Session) -> None:
    named = set()
    for rest in capability(session).get("rest", []):
        named |= {str(o.get("name")) for o in rest.get("operation", [])}
        for resource in rest.get("resource", []):
            named |= {str(o.get("name")) for o in resource.get("operation", [])}
    missing = [o for o in _OPERATIONS if o not in named]
    expect(not missing, f"operations not declared: {', '.join(missing)}")


@check(
    "cap-06",
    "The CapabilityStatement says SMART on FHIR secures the API",
    requirement="rest.security.service carries SMART-on-FHIR",
    link=f"{SMART}/conformance.html",
    inputs="the CapabilityStatement",
    asserts="a coding SMART-on-FHIR in rest.security.service",
    needs=("cap-01",),
)
def security_service(session: Session) -> None:
    codes = {
        str(c.get("code"))
        for rest in capability(session).get("rest", [])
        for service in (rest.get("security") or {}).get("service", [])
        for c in service.get("coding", [])
    }
    expect("SMART-on-FHIR" in codes, f"rest.security.service has {sorted(codes) or 'nothing'}")


@check(
    "cap-07",
    "SMART discovery: every REQUIRED field",
    requirement="GET [base]/.well-known/smart-configuration answers the required fields",
    link=f"{SMART}/conformance.html#metadata",
    inputs="the base URL",
    asserts="200 JSON with token_endpoint, capabilities, code_challenge_methods_supported, "
    "grant_types_supported, and authorization_endpoint when a launch capability is named",
)
def smart_required(session: Session) -> None:
    document = session.smart_configuration()
    missing = [f for f in _REQUIRED if not document.get(f)]
    capabilities = document.get("capabilities") or []
    if any(str(c).startswith("launch-") for c in capabilities):
        missing += [f for f in _REQUIRED_FOR_LAUNCH if not document.get(f)]
    expect(not missing, f"missing: {', '.join(missing)}")


@check(
    "cap-08",
    "SMART discovery: every RECOMMENDED field",
    requirement="The SMART configuration should carry the recommended fields",
    link=f"{SMART}/conformance.html#metadata",
    inputs="the SMART configuration",
    asserts="issuer, jwks_uri, scopes_supported, response_types_supported, "
    "management_endpoint, introspection_endpoint, revocation_endpoint, "
    "token_endpoint_auth_methods_supported; for backend services the signing algorithms",
    required=False,
    needs=("cap-07",),
)
def smart_recommended(session: Session) -> None:
    document = session.smart_configuration()
    wanted = list(_RECOMMENDED)
    if "client_credentials" in (document.get("grant_types_supported") or []):
        wanted += _BACKEND
    missing = [f for f in wanted if not document.get(f)]
    expect(not missing, f"missing: {', '.join(missing)}")


@check(
    "cap-09",
    "PKCE S256 only",
    requirement="Servers SHALL support S256 and SHALL NOT support plain",
    link=f"{SMART}/app-launch.html#step-1-register",
    inputs="the SMART configuration",
    asserts="code_challenge_methods_supported holds S256 and not plain",
    needs=("cap-07",),
)
def pkce_methods(session: Session) -> None:
    methods = session.smart_configuration().get("code_challenge_methods_supported") or []
    expect("S256" in methods, f"S256 is not supported: {methods}")
    expect("plain" not in methods, "plain is supported")


@check(
    "cap-10",
    "Data needs a token",
    requirement="Without a token nothing of a dossier is served: 401 with a Bearer challenge",
    link=f"{SMART}/app-launch.html#access-denied-response",
    inputs="the base URL",
    asserts="GET Patient without a token answers 401, WWW-Authenticate Bearer, and an "
    "OperationOutcome",
)
def needs_token(session: Session) -> None:
    answer = session.fhir("GET", "Patient")
    expect(answer.status == 401, f"GET Patient without a token answered {answer.status}")
    challenge = answer.headers.get("www-authenticate", "")
    expect(challenge.lower().startswith("bearer"), f"WWW-Authenticate is {challenge!r}")
    expect(answer.resource_type == "OperationOutcome", "the 401 carries no OperationOutcome")


@check(
    "cap-11",
    "The CapabilityStatement in XML says the same",
    requirement="XML and JSON are two forms of one resource",
    link=f"{FHIR}/formats.html",
    inputs="GET metadata with Accept application/fhir+xml",
    asserts="an XML CapabilityStatement with the same fhirVersion, status and kind",
    needs=("cap-01",),
)
def xml_agrees(session: Session) -> None:
    answer = session.request("GET", "metadata", headers={"Accept": "application/fhir+xml"})
    expect(answer.status == 200, f"GET metadata as XML answered {answer.status}")
    try:
        root = parse_hardened(answer.text.encode())
    except Invalid as error:
        raise Failed(f"the XML is refused: {error.diagnostics}") from None
    expect(root.tag == f"{_XHTML}CapabilityStatement", f"the XML root is {root.tag}")
    json_form = capability(session)
    for name in ("fhirVersion", "status", "kind"):
        element = root.find(f"{_XHTML}{name}")
        value = element.get("value") if element is not None else None
        expect(value == json_form.get(name), f"{name}: XML {value!r}, JSON {json_form.get(name)!r}")
