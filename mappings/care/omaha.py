"""The Omaha System: problems, intervention categories, and the outcome ratings.

- 42 problems in 4 domains (Problem Classification Scheme), codes ``01``..``42`` in the
  order of the published list, grouped under the domain concepts; Dutch displays after
  the Dutch Omaha System materials (btsg.nl), English designations from the 2005 list.
- 4 intervention categories.
- The Problem Rating Scale for Outcomes: Knowledge, Behavior and Status, each 1..5, as
  Observation components with the current score and the target score ("streefscore");
  ``Observation.encounter`` names the visit it was rated at.
- An intervention carried out at a visit, as a Procedure: its category, the problem it
  addresses (``reasonCode``), the visit (``encounter``) and what was done, in words.
- A ConceptMap from the ZRM 2017 domains to Omaha problems, for routing only: no official
  mapping exists, so every element is ``relatedto`` (Justitie maps to nothing).

The Omaha System is in the public domain; it has no official FHIR code system URI, so
these live under the project's canonical base.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    Reader,
    code_system,
    coding,
    concept_list,
    date_of,
    fail,
    narrative,
    reference_id,
    reference_to,
    whole_value_set,
)
from mappings.care.zrm_codes import DOMAINS as ZRM_DOMAINS

__all__ = [
    "CATEGORIES",
    "PROBLEMS",
    "RATINGS",
    "Intervention",
    "OmahaRating",
    "intervention_from_fhir",
    "intervention_to_fhir",
    "omaha_code_systems",
    "omaha_concept_map",
    "omaha_from_fhir",
    "omaha_to_fhir",
    "omaha_value_sets",
    "problem_domain",
    "problem_name",
]

#: domain code, Dutch, English, then its problems as (code, Dutch, English)
PROBLEMS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "environmental",
        "Omgevingsdomein",
        "Environmental",
        (
            ("01", "Inkomen", "Income"),
            ("02", "Omgevingshygiëne", "Sanitation"),
            ("03", "Woning", "Residence"),
            ("04", "Veiligheid in buurt of op werkplek", "Neighborhood/workplace safety"),
        ),
    ),
    (
        "psychosocial",
        "Psychosociaal domein",
        "Psychosocial",
        (
            (
                "05",
                "Communicatie met maatschappelijke voorzieningen",
                "Communication with community resources",
            ),
            ("06", "Sociaal contact", "Social contact"),
            ("07", "Rolverandering", "Role change"),
            ("08", "Interpersoonlijke relaties", "Interpersonal relationship"),
            ("09", "Spiritualiteit", "Spirituality"),
            ("10", "Rouw", "Grief"),
            ("11", "Geestelijke gezondheid", "Mental health"),
            ("12", "Seksualiteit", "Sexuality"),
            ("13", "Mantelzorg/zorg voor kind of huisgenoot", "Caretaking/parenting"),
            ("14", "Verwaarlozing", "Neglect"),
            ("15", "Mishandeling/misbruik", "Abuse"),
            ("16", "Groei en ontwikkeling", "Growth and development"),
        ),
    ),
    (
        "physiological",
        "Fysiologisch domein",
        "Physiological",
        (
            ("17", "Gehoor", "Hearing"),
            ("18", "Zicht", "Vision"),
            ("19", "Spraak en taal", "Speech and language"),
            ("20", "Mondgezondheid", "Oral health"),
            ("21", "Cognitie", "Cognition"),
            ("22", "Pijn", "Pain"),
            ("23", "Bewustzijn", "Consciousness"),
            ("24", "Huid", "Skin"),
            ("25", "Neuro-musculo-skeletale functie", "Neuro-musculo-skeletal function"),
            ("26", "Ademhaling", "Respiration"),
            ("27", "Circulatie", "Circulation"),
            ("28", "Spijsvertering-vochthuishouding", "Digestion-hydration"),
            ("29", "Darmfunctie", "Bowel function"),
            ("30", "Urinewegfunctie", "Urinary function"),
            ("31", "Geslachtsorganen", "Reproductive function"),
            ("32", "Zwangerschap", "Pregnancy"),
            ("33", "Postnataal", "Postpartum"),
            ("34", "Besmettelijke/infectieuze conditie", "Communicable/infectious condition"),
        ),
    ),
    (
        "health-related-behaviors",
        "Gezondheidsgerelateerd gedrag",
        "Health-related behaviors",
        (
            ("35", "Voeding", "Nutrition"),
            ("36", "Slaap- en rustpatroon", "Sleep and rest patterns"),
            ("37", "Fysieke activiteit", "Physical activity"),
            ("38", "Persoonlijke verzorging", "Personal care"),
            ("39", "Gebruik van verslavende middelen", "Substance use"),
            ("40", "Gezinsplanning", "Family planning"),
            ("41", "Gezondheidszorg supervisie", "Health care supervision"),
            ("42", "Medicatiegebruik", "Medication regimen"),
        ),
    ),
)

CATEGORIES: tuple[tuple[str, str, str], ...] = (
    (
        "teaching-guidance-counseling",
        "Educatie, begeleiding en counseling",
        "Teaching, guidance, and counseling",
    ),
    ("treatments-procedures", "Behandelingen en procedures", "Treatments and procedures"),
    ("case-management", "Casemanagement", "Case management"),
    ("surveillance", "Bewaking", "Surveillance"),
)

#: The three outcome scales; each rated 1..5, current and target.
RATINGS: tuple[tuple[str, str, str], ...] = (
    ("knowledge", "Kennis", "Knowledge"),
    ("behavior", "Gedrag", "Behavior"),
    ("status", "Status", "Status"),
)

_PROBLEM_NL = {code: nl for _, _, _, problems in PROBLEMS for code, nl, _ in problems}
_PROBLEM_DOMAIN = {code: domain for domain, _, _, problems in PROBLEMS for code, _, _ in problems}
_RATING_NL = {code: nl for code, nl, _ in RATINGS}
_CATEGORY_NL = {code: nl for code, nl, _ in CATEGORIES}


def problem_name(code: str) -> str:
    """The Dutch name of an Omaha problem (``01``..``42``)."""
    return _PROBLEM_NL[code]


def problem_domain(code: str) -> str:
    """The domain code an Omaha problem belongs to."""
    return _PROBLEM_DOMAIN[code]


#: ZRM 2017 domain -> Omaha problems (a routing aid; see the module text)
ZRM_2017_TO_OMAHA: dict[str, tuple[str, ...]] = {
    "financien": ("01",),
    "werk-opleiding": ("07", "06"),
    "tijdsbesteding": ("07", "06"),
    "huisvesting": ("03", "02", "04"),
    "huiselijke-relaties": ("08", "13", "15", "14"),
    "geestelijke-gezondheid": ("11", "21"),
    "lichamelijke-gezondheid": tuple(f"{n:02d}" for n in range(17, 35) if n != 21),
    "middelengebruik": ("39",),
    "basale-adl": ("38", "35"),
    "instrumentele-adl": ("42", "41", "03"),
    "sociaal-netwerk": ("06", "05"),
    "maatschappelijke-participatie": ("05", "06"),
    "justitie": (),
}


def omaha_code_systems(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """Problems (in their domains), intervention categories, and the rating scales."""
    problems = code_system(
        canon,
        "omaha-problems",
        "OmahaProblems",
        "Omaha System: probleemclassificatie",
        "The 42 problems of the Omaha System Problem Classification Scheme, in its four "
        "domains. The domain concepts are abstract: record problems, not domains.",
        [(domain, nl, en) for domain, nl, en, _ in PROBLEMS],
    )
    problems["hierarchyMeaning"] = "grouped-by"
    problems["property"] = [
        {
            "code": "abstract",
            "uri": "http://hl7.org/fhir/concept-properties#notSelectable",
            "type": "boolean",
        }
    ]
    for concept, (_, _, _, of_domain) in zip(problems["concept"], PROBLEMS, strict=True):
        concept["property"] = [{"code": "abstract", "valueBoolean": True}]
        concept["concept"] = concept_list(of_domain)
    problems["count"] = len(PROBLEMS) + len(_PROBLEM_NL)
    return [
        problems,
        code_system(
            canon,
            "omaha-intervention-category",
            "OmahaInterventionCategory",
            "Omaha System: interventiecategorieën",
            "The four intervention categories of the Omaha System Intervention Scheme.",
            CATEGORIES,
        ),
        code_system(
            canon,
            "omaha-rating",
            "OmahaRating",
            "Omaha System: uitkomstschalen",
            "The three scales of the Omaha System Problem Rating Scale for Outcomes "
            "(Knowledge, Behavior, Status), each 1 to 5; used as Observation component codes.",
            RATINGS,
        ),
    ]


def omaha_value_sets(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The selectable problems (no domain concepts), the categories and the scales."""
    problem_set = whole_value_set(canon, "omaha-problems")
    problem_set["title"] = "Omaha System: problemen"
    problem_set["compose"]["include"][0]["concept"] = [{"code": code} for code in _PROBLEM_NL]
    return [
        problem_set,
        whole_value_set(canon, "omaha-intervention-category"),
        whole_value_set(canon, "omaha-rating"),
    ]


def omaha_concept_map(canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    """ZRM 2017 domains -> Omaha problems, ``relatedto`` only: a routing aid."""
    names = {code: nl for code, nl, _ in ZRM_DOMAINS["2017"]}
    elements = []
    for domain, problems in ZRM_2017_TO_OMAHA.items():
        element: dict[str, Any] = {"code": domain, "display": names[domain]}
        if problems:
            element["target"] = [
                {"code": code, "display": _PROBLEM_NL[code], "equivalence": "relatedto"}
                for code in problems
            ]
        else:
            element["target"] = [
                {"equivalence": "unmatched", "comment": "Geen Omaha-probleem voor dit domein"}
            ]
        elements.append(element)
    return {
        "resourceType": "ConceptMap",
        "id": "zrm-2017-to-omaha",
        "url": canon.url("ConceptMap", "zrm-2017-to-omaha"),
        "name": "ZRM2017ToOmaha",
        "title": "ZRM 2017 naar Omaha System (routering)",
        "status": "active",
        "experimental": False,
        "publisher": "Eigen Dossier",
        "description": (
            "Where a ZRM 2017 life domain may lead in the Omaha System: a routing aid for "
            "nurses, not a translation. No official mapping exists and the scales are not "
            "convertible (ZRM self-sufficiency 1-5 per domain; Omaha K/B/S per problem)."
        ),
        "purpose": "Routing aid only; every relation is relatedto.",
        "sourceCanonical": canon.value_set("zrm-2017"),
        "targetCanonical": canon.value_set("omaha-problems"),
        "group": [
            {
                "source": canon.code_system("zrm-2017"),
                "sourceVersion": "2017",
                "target": canon.code_system("omaha-problems"),
                "element": elements,
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class OmahaRating:
    """Knowledge, Behavior and Status of one problem of one client, with targets."""

    id: str
    patient: str
    performer: str
    problem: str  # "01".."42"
    date: dt.date
    current: Mapping[str, int]  # knowledge/behavior/status -> 1..5 (all three)
    target: Mapping[str, int]  # the same scales, those a target was set for
    encounter: str | None = None  # the visit (Encounter id) it was rated at

    def __post_init__(self) -> None:
        if self.problem not in _PROBLEM_NL:
            fail("Not an Omaha System problem (01..42)", "Observation.code")
        if set(self.current) != set(_RATING_NL):
            fail("Knowledge, Behavior and Status are all rated", "Observation.component")
        for scale, value in {**self.current, **self.target}.items():
            if scale not in _RATING_NL:
                fail("The scales are knowledge, behavior and status", "Observation.component")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                fail("An Omaha rating is 1 to 5", "Observation.component")


def omaha_to_fhir(rating: OmahaRating, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    """An Observation: code the problem, a component per scale (current and target)."""
    scales = canon.code_system("omaha-rating")
    target_url = canon.extension("omaha-target")
    components = []
    for scale, nl, _ in RATINGS:
        components.append(
            {"code": {"coding": [coding(scales, scale, nl)]}, "valueInteger": rating.current[scale]}
        )
        if scale in rating.target:
            components.append(
                {
                    "extension": [{"url": target_url, "valueBoolean": True}],
                    "code": {"coding": [coding(scales, scale, nl)]},
                    "valueInteger": rating.target[scale],
                }
            )
    problem = _PROBLEM_NL[rating.problem]
    day = rating.date.isoformat()
    return {
        "resourceType": "Observation",
        "id": rating.id,
        "meta": {"profile": [canon.profile("omaha-rating")]},
        "text": narrative(
            f"Omaha {rating.problem} {problem}: KGS-scores",
            [("Datum", day), ("Cliënt", f"Patient/{rating.patient}")],
            [
                f"{_RATING_NL[s]}: {rating.current[s]}"
                + (f" (streef {rating.target[s]})" if s in rating.target else "")
                for s, _, _ in RATINGS
            ],
        ),
        "status": "final",
        "category": [
            {
                "coding": [
                    coding(
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                        "survey",
                        "Survey",
                    )
                ]
            }
        ],
        "code": {"coding": [coding(canon.code_system("omaha-problems"), rating.problem, problem)]},
        "subject": {"reference": f"Patient/{rating.patient}"},
        **(
            {"encounter": {"reference": f"Encounter/{rating.encounter}"}}
            if rating.encounter
            else {}
        ),
        "effectiveDateTime": day,
        "performer": [{"reference": rating.performer}],
        "component": components,
    }


def omaha_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> OmahaRating:
    read = Reader(resource, "Observation", canon.profile("omaha-rating"))
    problem = read.the_code(
        read.need("code"), canon.code_system("omaha-problems"), "Observation.code", _PROBLEM_NL
    )
    current: dict[str, int] = {}
    target: dict[str, int] = {}
    target_url = canon.extension("omaha-target")
    for index, component in enumerate(read.need("component")):
        where = f"Observation.component[{index}]"
        scale = read.the_code(
            component.get("code") if isinstance(component, dict) else None,
            canon.code_system("omaha-rating"),
            f"{where}.code",
            _RATING_NL,
        )
        is_target = any(
            e.get("url") == target_url and e.get("valueBoolean") is True
            for e in component.get("extension", [])
        )
        into = target if is_target else current
        if scale in into:
            fail("Each scale is rated once (and targeted once)", f"{where}.code")
        value = component.get("valueInteger")
        if not isinstance(value, int) or isinstance(value, bool):
            fail("A rating is valueInteger", f"{where}.valueInteger")
        into[scale] = value
    performers = read.need("performer")
    encounter = read.get("encounter")
    return OmahaRating(
        id=read.text("id") or "",
        patient=reference_id(read.need("subject"), "Patient", read.path("subject")),
        performer=reference_to(
            performers[0], ("Practitioner", "PractitionerRole"), "Observation.performer[0]"
        ),
        problem=problem,
        date=date_of(read.text("effectiveDateTime") or "", read.path("effectiveDateTime")),
        current=current,
        target=target,
        encounter=reference_id(encounter, "Encounter", "Observation.encounter")
        if encounter is not None
        else None,
    )


@dataclass(frozen=True, slots=True)
class Intervention:
    """What a nurse did for one problem at one visit: an Omaha intervention."""

    id: str
    patient: str
    encounter: str  # the visit (Encounter id)
    problem: str  # "01".."42"
    category: str  # one of CATEGORIES
    date: dt.date
    description: str  # what was done, in words (the Omaha "care description")
    performer: str | None = None  # Practitioner/ID or PractitionerRole/ID

    def __post_init__(self) -> None:
        if self.problem not in _PROBLEM_NL:
            fail("Not an Omaha System problem (01..42)", "Procedure.reasonCode")
        if self.category not in _CATEGORY_NL:
            fail(
                f"The category is one of {', '.join(_CATEGORY_NL)}",
                "Procedure.category",
            )
        if not self.description.strip():
            fail("An intervention says what was done", "Procedure.note")
        if self.performer is not None and self.performer.split("/", 1)[0] not in (
            "Practitioner",
            "PractitionerRole",
        ):
            fail("The performer is a Practitioner or PractitionerRole", "Procedure.performer")


def intervention_to_fhir(
    intervention: Intervention, canon: Canon = DEFAULT_CANON
) -> dict[str, Any]:
    """A Procedure: the category, the problem as the reason, the visit, the words."""
    category = _CATEGORY_NL[intervention.category]
    problem = _PROBLEM_NL[intervention.problem]
    day = intervention.date.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": intervention.id,
        "meta": {"profile": [canon.profile("omaha-intervention")]},
        "text": narrative(
            f"Omaha {intervention.problem} {problem}: {category}",
            [("Datum", day), ("Bezoek", f"Encounter/{intervention.encounter}")],
            [intervention.description],
        ),
        "status": "completed",
        "category": {
            "coding": [
                coding(
                    canon.code_system("omaha-intervention-category"),
                    intervention.category,
                    category,
                )
            ]
        },
        "subject": {"reference": f"Patient/{intervention.patient}"},
        "encounter": {"reference": f"Encounter/{intervention.encounter}"},
        "performedDateTime": day,
    }
    if intervention.performer:
        resource["performer"] = [{"actor": {"reference": intervention.performer}}]
    resource["reasonCode"] = [
        {"coding": [coding(canon.code_system("omaha-problems"), intervention.problem, problem)]}
    ]
    resource["note"] = [{"text": intervention.description}]
    return resource


def intervention_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> Intervention:
    read = Reader(resource, "Procedure", canon.profile("omaha-intervention"))
    if read.get("status") != "completed":
        fail("An intervention that was carried out is completed", "Procedure.status")
    category = read.the_code(
        read.need("category"),
        canon.code_system("omaha-intervention-category"),
        "Procedure.category",
        _CATEGORY_NL,
    )
    reasons = read.need("reasonCode")
    if not isinstance(reasons, list) or len(reasons) != 1:
        fail("An intervention addresses one Omaha problem", "Procedure.reasonCode")
    problem = read.the_code(
        reasons[0], canon.code_system("omaha-problems"), "Procedure.reasonCode[0]", _PROBLEM_NL
    )
    notes = read.need("note")
    if not isinstance(notes, list) or len(notes) != 1 or not isinstance(notes[0], dict):
        fail("An intervention has one note: what was done", "Procedure.note")
    description = notes[0].get("text")
    if not isinstance(description, str):
        fail("The note is text", "Procedure.note[0].text")
    performers = read.get("performer") or []
    if len(performers) > 1:
        fail("An intervention has at most one performer", "Procedure.performer")
    return Intervention(
        id=read.text("id") or "",
        patient=reference_id(read.need("subject"), "Patient", "Procedure.subject"),
        encounter=reference_id(read.need("encounter"), "Encounter", "Procedure.encounter"),
        problem=problem,
        category=category,
        date=date_of(read.text("performedDateTime") or "", "Procedure.performedDateTime"),
        description=description,
        performer=reference_to(
            performers[0].get("actor") if isinstance(performers[0], dict) else None,
            ("Practitioner", "PractitionerRole"),
            "Procedure.performer[0].actor",
        )
        if performers
        else None,
    )
