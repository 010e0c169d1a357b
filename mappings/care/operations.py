"""The OperationDefinitions of the operations the gateway adds to FHIR.

``Patient/{id}/$zrm-progress`` (the ZRM scores over time), ``Consent/$explain`` (why an
actor may or may not see a resource) and ``Patient/{id}/$break-the-glass`` (time-boxed
emergency access). The CapabilityStatement names each with its canonical URL.
"""

from __future__ import annotations

from typing import Any

from mappings.care.base import Canon

__all__ = ["operation_definitions"]


def _parameter(
    name: str,
    use: str,
    kind: str | None,
    low: int,
    high: str,
    doc: str,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "use": use, "min": low, "max": high}
    found["documentation"] = doc
    if kind:
        found["type"] = kind
    if parts:
        found["part"] = parts
    return found


def _definition(
    canon: Canon,
    published: str,
    code: str,
    title: str,
    description: str,
    resource: str,
    *,
    instance: bool,
    affects_state: bool,
    parameters: list[dict[str, Any]],
    system: bool = False,
) -> dict[str, Any]:
    return {
        "resourceType": "OperationDefinition",
        "id": code,
        "url": canon.url("OperationDefinition", code),
        "name": "".join(part.title() for part in code.split("-")),
        "title": title,
        "status": "active",
        "kind": "operation",
        "publisher": "Eigen Dossier",
        "date": published,
        "description": description,
        "affectsState": affects_state,
        "code": code,
        **({"resource": [resource]} if resource else {}),
        "system": system,
        "type": not instance and not system,
        "instance": instance,
        "parameter": parameters,
    }


def operation_definitions(canon: Canon, published: str) -> list[dict[str, Any]]:
    """The OperationDefinitions of ``$zrm-progress``, ``$explain``, ``$break-the-glass`` and
    ``$declare``."""
    point = [
        _parameter("date", "out", "string", 1, "1", "When it was scored"),
        _parameter("score", "out", "integer", 1, "1", "1 to 5"),
        _parameter("moment", "out", "code", 0, "1", "intake, progress or exit"),
        _parameter("observation", "out", "Reference", 1, "1", "The Observation"),
    ]
    series = [
        _parameter("version", "out", "string", 1, "1", "2013 or 2017"),
        _parameter("domain", "out", "Coding", 1, "1", "The ZRM domain"),
        _parameter("point", "out", None, 1, "*", "One score", point),
    ]
    return [
        _definition(
            canon,
            published,
            "zrm-progress",
            "ZRM-voortgang van een cliënt",
            "The ZRM scores of one client over time, per version and domain, in date order; "
            "only the scores the caller may see (the client's consent applies).",
            "Patient",
            instance=True,
            affects_state=False,
            parameters=[
                _parameter("series", "out", None, 0, "*", "One version and domain", series)
            ],
        ),
        _definition(
            canon,
            published,
            "explain",
            "Waarom mag iemand dit (niet) zien",
            "Why an actor may or may not act on a resource: the decision, the Consent and the "
            "provision that decided, and the actors the caller counts as. For the client about "
            "their own dossier, and for administrators.",
            "Consent",
            instance=False,
            affects_state=False,
            parameters=[
                _parameter(
                    "actor", "in", "string", 1, "1", "Practitioner/id, Organization/id, ..."
                ),
                _parameter("resource", "in", "string", 1, "1", "Type/id of the resource"),
                _parameter(
                    "action",
                    "in",
                    "code",
                    0,
                    "1",
                    "A consentaction code (access, use, disclose, collect: reading; correct: "
                    "writing) or read / write; default read",
                ),
                _parameter("purpose", "in", "code", 0, "1", "The purpose of use (v3-ActReason)"),
                _parameter("decision", "out", "code", 1, "1", "permit or deny"),
                _parameter("reason", "out", "string", 1, "1", "The reason, in words"),
                _parameter("consent", "out", "Reference", 0, "1", "The Consent that decided"),
                _parameter("provision", "out", "string", 0, "1", "The provision that decided"),
                _parameter("actor", "out", "string", 0, "*", "Whom the actor counts as"),
            ],
        ),
        _definition(
            canon,
            published,
            "break-the-glass",
            "Noodtoegang",
            "Emergency access to one client's dossier for the practitioner calling it, for four "
            "hours: it writes an active Consent (policyRule BTG with the reason) that the "
            "client sees and can end; every access under it is logged with the reason.",
            "Patient",
            instance=True,
            affects_state=True,
            parameters=[
                _parameter("reason", "in", "string", 1, "1", "Why (at most 500 characters)"),
                _parameter("return", "out", "Consent", 1, "1", "The emergency Consent"),
            ],
        ),
        _definition(
            canon,
            published,
            "summary",
            "Samenvatting voor de huisarts",
            "The client's summary as a FHIR document (Bundle of type document): a Composition "
            "with the active krachtplan (goals, activities), the latest ZRM score per domain "
            "with the change since the first, the crisis plan with who to call, the visits of "
            "the last 90 days and the care team, each section with a Dutch narrative. Only "
            "what the caller may see; a section with nothing visible says so in the same "
            "words whether or not there is anything.",
            "Patient",
            instance=True,
            affects_state=False,
            parameters=[_parameter("return", "out", "Bundle", 1, "1", "The document")],
        ),
        _definition(
            canon,
            published,
            "evaluate-measure",
            "Uitkomsten ZRM per team en wijk",
            "The ZRM outcome reports of one quarter (Measure zrm-outcomes): one MeasureReport "
            "for all clients, one per team (reporter) and one per neighbourhood (postcode "
            "area), per ZRM 2017 domain the clients with intake and follow-up, the mean change "
            "and how many improved, stayed or got worse. Counts under 5 are suppressed; no "
            "client is named. Recorded in the dossier. For administrators and backend apps "
            "with system/MeasureReport.c.",
            "",
            instance=False,
            system=True,
            affects_state=True,
            parameters=[
                _parameter("period", "in", "string", 1, "1", "The quarter: YYYY-Qn"),
                _parameter("measure", "in", "string", 0, "1", "The Measure (default zrm-outcomes)"),
                _parameter("return", "out", "Bundle", 1, "1", "The MeasureReports"),
            ],
        ),
        _definition(
            canon,
            published,
            "declare",
            "Declareren",
            "Turn the finished visits of one month into the declaration files of one format "
            "(one per payer) and record a Claim per declared line in each client's dossier. "
            "Idempotent: a line is declared once; a changed or cancelled visit gives a credit "
            "and a new debit. For administrators and back-office apps with system/Claim.c. "
            "Answers a Bundle (collection) with a Binary per file and an OperationOutcome of "
            "what was declared, held or refused.",
            "",
            instance=False,
            system=True,
            affects_state=True,
            parameters=[
                _parameter(
                    "format", "in", "code", 1, "1", "wmo323 (iWmo), aw319 (Vektis) or gds801"
                ),
                _parameter("period", "in", "string", 1, "1", "The month: YYYY-MM"),
                _parameter(
                    "payer",
                    "in",
                    "string",
                    0,
                    "1",
                    "One payer only: its CBS municipality code or UZOVI number",
                ),
                _parameter(
                    "dry-run",
                    "in",
                    "boolean",
                    0,
                    "1",
                    "Validate and report; write no file to the dossier and record no Claim",
                ),
                _parameter(
                    "return",
                    "out",
                    "Bundle",
                    1,
                    "1",
                    "A collection: a Binary per file (contentType, data) and an "
                    "OperationOutcome with what was declared, held and refused",
                ),
            ],
        ),
        _definition(
            canon,
            published,
            "omaha-export",
            "Omaha-registratie naar de backoffice",
            "The finished visits of a month or a day, each as one NDJSON record with the "
            "Omaha System problems it addressed, the interventions per problem (category, "
            "what was done) and the Knowledge/Behavior/Status ratings taken at it; left in "
            "the outbox as messages for a destination the operator configured (an HTTP "
            "endpoint or an AMQP exchange), delivered at least once with an idempotency key. "
            "A rerun with nothing changed sends nothing. Each client's access log records "
            "the export. For administrators and backend apps with system/Encounter.rs.",
            "",
            instance=False,
            system=True,
            affects_state=True,
            parameters=[
                _parameter("period", "in", "string", 1, "1", "The month (YYYY-MM) or day"),
                _parameter(
                    "destination", "in", "string", 1, "1", "The destination's configured name"
                ),
                _parameter("team", "in", "string", 0, "1", "One team: its Organization id"),
                _parameter(
                    "per-message", "in", "integer", 0, "1", "Visits per message (default 1000)"
                ),
                _parameter(
                    "return",
                    "out",
                    "OperationOutcome",
                    1,
                    "1",
                    "How many visits, clients and messages; how many messages were new",
                ),
            ],
        ),
    ]
