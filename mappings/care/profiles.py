"""The StructureDefinitions of the care mappings: profiles on base R4 and extensions.

Each is a differential on the base resource (derivation ``constraint``), written here as
data; :mod:`mappings.core.profile` checks resources against it, the gateway serves it and
``$validate?profile=`` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mappings.care.base import DEFAULT_CANON, Canon

__all__ = ["EXTENSIONS", "PROFILES", "structure_definitions"]

_CORE = "http://hl7.org/fhir/StructureDefinition/"
_SURVEY = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}
    ]
}

#: A score on a five-point scale: ZRM (1-5) and the Omaha KBS ratings (1-5).
_SCORE = {"minValueInteger": 1, "maxValueInteger": 5}


@dataclass(frozen=True, slots=True)
class El:
    """One differential element; ``ext`` names an extension slice by its id here."""

    path: str
    min: int | None = None
    max: str | None = None
    types: tuple[str, ...] = ()  # type codes; "Reference(Patient|Group)" for targets
    ext: str | None = None
    binding: str | None = None  # value set name, required
    extra: dict[str, Any] = field(default_factory=dict)  # fixed[x], pattern[x], min/maxValue[x]
    short: str | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    type: str
    title: str
    description: str
    elements: tuple[El, ...]


@dataclass(frozen=True, slots=True)
class Extension:
    id: str
    title: str
    description: str
    context: str
    value: str  # the one value type, e.g. "Coding" or "Reference(RelatedPerson)"
    binding: str | None = None


EXTENSIONS: tuple[Extension, ...] = (
    Extension(
        "zrm-moment",
        "ZRM meetmoment",
        "When the ZRM score was taken: intake, progress or exit.",
        "Observation",
        "code",
        "zrm-moment",
    ),
    Extension(
        "life-domain",
        "Leefgebied",
        "A ZRM 2017 life domain the plan addresses.",
        "CarePlan",
        "Coding",
        "zrm-2017",
    ),
    Extension(
        "activity-owner",
        "Wie doet het",
        "Who carries out the activity: the client, the network, a volunteer, the team, "
        "or a specialist who flies in.",
        "CarePlan.activity",
        "Coding",
        "activity-owner",
    ),
    Extension(
        "warning-sign",
        "Signaal",
        "An early warning sign of a crisis, in the client's words.",
        "CarePlan",
        "string",
    ),
    Extension(
        "agreed-with",
        "Afgesproken met",
        "A network member who agreed to the crisis plan.",
        "CarePlan",
        "Reference(RelatedPerson)",
    ),
    Extension(
        "crisis-telephone",
        "Telefoon bij crisis",
        "The number to call for this action of the crisis plan.",
        "CarePlan.activity",
        "string",
    ),
    Extension(
        "funding-stream",
        "Financieringsstroom",
        "The law the visit is paid under (Zvw, Wlz, Wmo, GGZ).",
        "Encounter",
        "Coding",
        "funding-stream",
    ),
    Extension(
        "product-code",
        "Prestatiecode",
        "The product or prestatie code the visit is declared under.",
        "Encounter",
        "string",
    ),
    Extension(
        "allocation-number",
        "Toewijzingnummer",
        "The Wmo allocation number (ToewijzingNummer of the WMO301) the visit belongs to.",
        "Encounter",
        "string",
    ),
    Extension(
        "served-activity",
        "Gediende activiteit",
        "The key of the CarePlan activity (of the plan in basedOn) the visit served.",
        "Encounter",
        "string",
    ),
    Extension(
        "omaha-target",
        "Streefscore",
        "Marks an Omaha rating component as the target, not the current score.",
        "Observation.component",
        "boolean",
    ),
)

PROFILES: tuple[Profile, ...] = (
    Profile(
        "zrm-questionnaireresponse",
        "QuestionnaireResponse",
        "ZRM afname",
        "One ZRM measurement: the moment and a score per domain, for one client.",
        (
            El("QuestionnaireResponse.questionnaire", 1),
            El("QuestionnaireResponse.status", extra={"fixedCode": "completed"}),
            El("QuestionnaireResponse.subject", 1, types=("Reference(Patient)",)),
            El("QuestionnaireResponse.authored", 1),
            El(
                "QuestionnaireResponse.author",
                1,
                types=("Reference(Practitioner|PractitionerRole)",),
            ),
            El("QuestionnaireResponse.item", 2),
        ),
    ),
    Profile(
        "zrm-observation",
        "Observation",
        "ZRM score",
        "The score (1-5) of one ZRM domain at one moment, derived from the ZRM afname.",
        (
            El("Observation.extension", 1, "1", ext="zrm-moment"),
            El("Observation.category", 1, extra={"patternCodeableConcept": _SURVEY}),
            El("Observation.code", binding="zrm-domains"),
            El("Observation.subject", 1, types=("Reference(Patient)",)),
            El("Observation.effective[x]", 1, types=("dateTime",)),
            El("Observation.performer", 1, types=("Reference(Practitioner|PractitionerRole)",)),
            El("Observation.value[x]", 1, types=("integer",), extra=_SCORE),
            El("Observation.derivedFrom", 1, "1", types=("Reference(QuestionnaireResponse)",)),
        ),
    ),
    Profile(
        "zrm-goal",
        "Goal",
        "ZRM streefscore",
        "A target score for one ZRM domain.",
        (
            El("Goal.subject", types=("Reference(Patient)",)),
            El("Goal.target", 1, "1"),
            El("Goal.target.measure", 1, binding="zrm-domains"),
            El("Goal.target.detail[x]", 1, types=("integer",), extra=_SCORE),
            El("Goal.addresses", 1, "1", types=("Reference(Observation)",)),
        ),
    ),
    Profile(
        "krachtplan",
        "CarePlan",
        "Krachtplan",
        "The plan made with the client (plan van aanpak): goals, and activities each with "
        "an owner. For a Patient or a household (Group).",
        (
            El("CarePlan.extension", 0, "*", ext="life-domain"),
            El(
                "CarePlan.category",
                1,
                extra={
                    "patternCodeableConcept": {
                        "coding": [{"system": "{canon}/CodeSystem/plan-kind", "code": "krachtplan"}]
                    }
                },
            ),
            El("CarePlan.intent", extra={"fixedCode": "plan"}),
            El("CarePlan.subject", types=("Reference(Patient|Group)",)),
            El("CarePlan.period", 1),
            El("CarePlan.period.start", 1),
            El("CarePlan.author", 1, types=("Reference(Practitioner|PractitionerRole)",)),
            El("CarePlan.careTeam", 0, "1"),
            El("CarePlan.activity.extension", 1, "1", ext="activity-owner"),
            El("CarePlan.activity.detail", 1),
            El("CarePlan.activity.detail.description", 1),
            El("CarePlan.activity.detail.performer", 0, "1"),
        ),
    ),
    Profile(
        "krachtplan-goal",
        "Goal",
        "Doel van het krachtplan",
        "A goal in the client's words; optionally a ZRM 2017 domain and target score.",
        (
            El("Goal.description.text", 1),
            El("Goal.target", 0, "1"),
            El("Goal.target.measure", 1, binding="zrm-2017"),
            El("Goal.target.detail[x]", types=("integer",), extra=_SCORE),
        ),
    ),
    Profile(
        "crisisplan",
        "CarePlan",
        "Crisisplan",
        "What the client and their network do when things go wrong: warning signs, and "
        "who acts and how.",
        (
            El("CarePlan.extension", 0, "*", ext="warning-sign"),
            El("CarePlan.extension", 0, "*", ext="agreed-with"),
            El(
                "CarePlan.category",
                1,
                extra={
                    "patternCodeableConcept": {
                        "coding": [{"system": "{canon}/CodeSystem/plan-kind", "code": "crisisplan"}]
                    }
                },
            ),
            El("CarePlan.intent", extra={"fixedCode": "plan"}),
            El("CarePlan.subject", types=("Reference(Patient)",)),
            El("CarePlan.period", 1),
            El("CarePlan.author", 1),
            El("CarePlan.activity", 1),
            El("CarePlan.activity.extension", 0, "1", ext="crisis-telephone"),
            El(
                "CarePlan.activity.detail.performer",
                1,
                "1",
                types=("Reference(RelatedPerson|Practitioner|PractitionerRole|Organization)",),
            ),
            El("CarePlan.activity.detail.description", 1),
        ),
    ),
    Profile(
        "visit",
        "Encounter",
        "Bezoek of contact",
        "A home visit, practice visit, phone or video contact, with the fields declarations need.",
        (
            El("Encounter.extension", 0, "1", ext="funding-stream"),
            El("Encounter.extension", 0, "1", ext="product-code"),
            El("Encounter.extension", 0, "1", ext="allocation-number"),
            El("Encounter.extension", 0, "*", ext="served-activity"),
            El("Encounter.type", 1, "1", binding="contact-mode"),
            El("Encounter.subject", 1, types=("Reference(Patient)",)),
            El("Encounter.participant", 1),
            El(
                "Encounter.participant.individual",
                1,
                types=("Reference(Practitioner|PractitionerRole|RelatedPerson)",),
            ),
            El("Encounter.period", 1),
            El("Encounter.period.start", 1),
            El("Encounter.period.end", 1),
            El(
                "Encounter.length",
                1,
                extra={"patternDuration": {"system": "http://unitsofmeasure.org", "code": "min"}},
            ),
            El("Encounter.length.value", 1, extra={"minValueDecimal": 0}),
            El("Encounter.reasonCode", binding="omaha-problems"),
            El("Encounter.basedOn", 0, "1", types=("Reference(CarePlan)",)),
            El("Encounter.serviceProvider", types=("Reference(Organization)",)),
        ),
    ),
    Profile(
        "omaha-intervention",
        "Procedure",
        "Omaha interventie",
        "An Omaha System intervention carried out at a visit: its category, the one problem "
        "it addresses, and what was done in words.",
        (
            El("Procedure.status", extra={"fixedCode": "completed"}),
            El("Procedure.category", 1, binding="omaha-intervention-category"),
            El("Procedure.subject", 1, types=("Reference(Patient)",)),
            El("Procedure.encounter", 1, types=("Reference(Encounter)",)),
            El("Procedure.performed[x]", 1, types=("dateTime",)),
            El("Procedure.performer.actor", types=("Reference(Practitioner|PractitionerRole)",)),
            El("Procedure.reasonCode", 1, "1", binding="omaha-problems"),
            El("Procedure.note", 1, "1"),
        ),
    ),
    Profile(
        "omaha-rating",
        "Observation",
        "Omaha KGS-score",
        "Knowledge, Behavior and Status of one Omaha System problem, current and target.",
        (
            El("Observation.category", 1, extra={"patternCodeableConcept": _SURVEY}),
            El("Observation.code", binding="omaha-problems"),
            El("Observation.subject", 1, types=("Reference(Patient)",)),
            El("Observation.encounter", types=("Reference(Encounter)",)),
            El("Observation.effective[x]", 1, types=("dateTime",)),
            El("Observation.performer", 1),
            El("Observation.value[x]", 0, "0"),
            El("Observation.component", 3, "6"),
            El("Observation.component.extension", 0, "1", ext="omaha-target"),
            El("Observation.component.code", binding="omaha-rating"),
            El("Observation.component.value[x]", 1, types=("integer",), extra=_SCORE),
        ),
    ),
)


def _types(spec: str) -> dict[str, Any]:
    if spec.startswith("Reference("):
        targets = spec[len("Reference(") : -1].split("|")
        return {"code": "Reference", "targetProfile": [_CORE + t for t in targets]}
    return {"code": spec}


def _resolve(value: Any, canon: Canon) -> Any:
    if isinstance(value, str):
        return value.replace("{canon}", canon.base.rstrip("/"))
    if isinstance(value, dict):
        return {k: _resolve(v, canon) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, canon) for v in value]
    return value


def _element(element: El, canon: Canon) -> dict[str, Any]:
    found: dict[str, Any] = {"id": element.path, "path": element.path}
    if element.ext:
        name = element.ext.replace("-", "")
        found["id"] = f"{element.path}:{name}"
        found["sliceName"] = name
        found["type"] = [{"code": "Extension", "profile": [canon.extension(element.ext)]}]
    elif element.types:
        found["type"] = [_types(t) for t in element.types]
    if element.min is not None:
        found["min"] = element.min
    if element.max is not None:
        found["max"] = element.max
    found.update(_resolve(element.extra, canon))
    if element.binding:
        found["binding"] = {"strength": "required", "valueSet": canon.value_set(element.binding)}
    return found


def _slicing(path: str) -> dict[str, Any]:
    return {
        "id": path,
        "path": path,
        "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"},
    }


def structure_definitions(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """Every profile and extension definition, as StructureDefinition resources."""
    found: list[dict[str, Any]] = []
    for profile in PROFILES:
        elements: list[dict[str, Any]] = [{"id": profile.type, "path": profile.type}]
        sliced: set[str] = set()
        for element in profile.elements:
            if element.ext and element.path not in sliced:
                sliced.add(element.path)
                elements.append(_slicing(element.path))
            elements.append(_element(element, canon))
        found.append(
            {
                "resourceType": "StructureDefinition",
                "id": profile.id,
                "url": canon.profile(profile.id),
                "name": "".join(part.title() for part in profile.id.split("-")),
                "title": profile.title,
                "status": "active",
                "publisher": "Eigen Dossier",
                "description": profile.description,
                "fhirVersion": "4.0.1",
                "kind": "resource",
                "abstract": False,
                "type": profile.type,
                "baseDefinition": _CORE + profile.type,
                "derivation": "constraint",
                "differential": {"element": elements},
            }
        )
    for extension in EXTENSIONS:
        value: dict[str, Any] = {
            "id": "Extension.value[x]",
            "path": "Extension.value[x]",
            "min": 1,
            "type": [_types(extension.value)],
        }
        if extension.binding:
            value["binding"] = {
                "strength": "required",
                "valueSet": canon.value_set(extension.binding),
            }
        found.append(
            {
                "resourceType": "StructureDefinition",
                "id": extension.id,
                "url": canon.extension(extension.id),
                "name": "".join(part.title() for part in extension.id.split("-")),
                "title": extension.title,
                "status": "active",
                "publisher": "Eigen Dossier",
                "description": extension.description,
                "fhirVersion": "4.0.1",
                "kind": "complex-type",
                "abstract": False,
                "context": [{"type": "element", "expression": extension.context}],
                "type": "Extension",
                "baseDefinition": _CORE + "Extension",
                "derivation": "constraint",
                "differential": {
                    "element": [
                        {"id": "Extension", "path": "Extension", "max": "1"},
                        {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                        {
                            "id": "Extension.url",
                            "path": "Extension.url",
                            "fixedUri": canon.extension(extension.id),
                        },
                        value,
                    ]
                },
            }
        )
    return found
