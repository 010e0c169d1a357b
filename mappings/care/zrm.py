"""The Zelfredzaamheid-Matrix (ZRM): code systems, questionnaires and assessments.

Two versions, never converted into each other: 2013 (11 domains) and 2017 (13 domains),
each its own versioned CodeSystem and Questionnaire. The scale is 1 (acute
problematiek) to 5 (volledig zelfredzaam); a measurement is taken at intake, during
progress, or at exit. An assessment is one QuestionnaireResponse, one Observation per
domain scored (category survey, code the domain, value the score, derivedFrom the
response) and a Goal per target score. Dutch names and labels after the ZRM handbook
(GGD Amsterdam); English displays of the four domains new in 2017 are our own
translation (see DOMAIN.md §1.2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    MappingError,
    Reader,
    code_system,
    coding,
    date_of,
    fail,
    narrative,
    reference_id,
    reference_to,
    whole_value_set,
)

__all__ = [
    "DOMAINS",
    "MOMENTS",
    "SCALE",
    "VERSIONS",
    "ZrmAssessment",
    "ZrmPoint",
    "zrm_code_systems",
    "zrm_from_fhir",
    "zrm_progress",
    "zrm_questionnaires",
    "zrm_to_fhir",
    "zrm_value_sets",
]

VERSIONS = ("2013", "2017")

#: (code, Dutch name, English display) per version, in the order of the matrix.
DOMAINS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "2013": (
        ("financien", "Financiën", "Income"),
        ("dagbesteding", "Dagbesteding", "Day-time activities"),
        ("huisvesting", "Huisvesting", "Housing"),
        ("huiselijke-relaties", "Huiselijke relaties", "Domestic relations"),
        ("geestelijke-gezondheid", "Geestelijke gezondheid", "Mental health"),
        ("lichamelijke-gezondheid", "Lichamelijke gezondheid", "Physical health"),
        ("verslaving", "Verslaving", "Addiction"),
        ("adl", "Activiteiten Dagelijks Leven (ADL)", "Daily life skills"),
        ("sociaal-netwerk", "Sociaal netwerk", "Social network"),
        (
            "maatschappelijke-participatie",
            "Maatschappelijke participatie",
            "Community participation",
        ),
        ("justitie", "Justitie", "Judiciary"),
    ),
    "2017": (
        ("financien", "Financiën", "Income"),
        ("werk-opleiding", "Werk & Opleiding", "Work and education"),
        ("tijdsbesteding", "Tijdsbesteding", "Time use"),
        ("huisvesting", "Huisvesting", "Housing"),
        ("huiselijke-relaties", "Huiselijke relaties", "Domestic relations"),
        ("geestelijke-gezondheid", "Geestelijke gezondheid", "Mental health"),
        ("lichamelijke-gezondheid", "Lichamelijke gezondheid", "Physical health"),
        ("middelengebruik", "Middelengebruik", "Substance use"),
        ("basale-adl", "Basale ADL", "Basic activities of daily living"),
        ("instrumentele-adl", "Instrumentele ADL", "Instrumental activities of daily living"),
        ("sociaal-netwerk", "Sociaal netwerk", "Social network"),
        (
            "maatschappelijke-participatie",
            "Maatschappelijke participatie",
            "Community participation",
        ),
        ("justitie", "Justitie", "Judiciary"),
    ),
}

SCALE: tuple[tuple[int, str, str], ...] = (
    (1, "acute problematiek", "acute problems"),
    (2, "niet zelfredzaam", "not self-sufficient"),
    (3, "beperkt zelfredzaam", "limited self-sufficiency"),
    (4, "voldoende zelfredzaam", "sufficiently self-sufficient"),
    (5, "volledig zelfredzaam", "completely self-sufficient"),
)

MOMENTS: tuple[tuple[str, str, str], ...] = (
    ("intake", "Intake", "Intake"),
    ("progress", "Tussenmeting", "Progress measurement"),
    ("exit", "Eindmeting", "Exit measurement"),
)

_SURVEY = "http://terminology.hl7.org/CodeSystem/observation-category"
_NAMES = {version: {code: nl for code, nl, _ in domains} for version, domains in DOMAINS.items()}
_SCALE_NL = {score: nl for score, nl, _ in SCALE}
_MOMENT_NL = {code: nl for code, nl, _ in MOMENTS}


def _link(version: str, code: str) -> str:
    """An item's linkId carries the version, so no answer can change version."""
    return f"zrm{version}-{code}"


def _system(canon: Canon, version: str) -> str:
    return canon.code_system(f"zrm-{version}")


def _questionnaire(canon: Canon, version: str) -> str:
    return canon.url("Questionnaire", f"zrm-{version}")


@dataclass(frozen=True, slots=True)
class ZrmAssessment:
    """One ZRM measurement of one client by one professional.

    ``id`` names the QuestionnaireResponse; the Observations are ``{id}-{domain}`` and the
    Goals ``{id}-target-{domain}``. ``scores`` and ``targets`` map domain codes of the
    version to 1..5; a target needs a score for its domain.
    """

    id: str
    version: str
    patient: str
    performer: str  # Practitioner/ID or PractitionerRole/ID
    moment: str
    date: dt.date
    scores: Mapping[str, int]
    targets: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            message, where = problems[0]
            fail(message, where)


def _problems(assessment: ZrmAssessment) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if assessment.version not in VERSIONS:
        found.append(("The ZRM version is 2013 or 2017", "QuestionnaireResponse.questionnaire"))
        return found
    if assessment.moment not in _MOMENT_NL:
        found.append(("The moment is intake, progress or exit", "QuestionnaireResponse.item"))
    if not assessment.scores:
        found.append(("An assessment scores at least one domain", "QuestionnaireResponse.item"))
    names = _NAMES[assessment.version]
    for domain, score in {**assessment.scores, **assessment.targets}.items():
        if domain not in names:
            found.append(
                (
                    f"{domain!s:.40} is not a ZRM {assessment.version} domain",
                    "QuestionnaireResponse.item",
                )
            )
        elif not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            found.append(("A ZRM score is 1 to 5", f"QuestionnaireResponse.item('{domain}')"))
    for domain in assessment.targets:
        if domain not in assessment.scores:
            found.append(("A target score needs a score for its domain", f"Goal('{domain}')"))
    return found


# -- definition resources-------------------------------------------------------------


def zrm_code_systems(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The domain code systems (one per version), the scale and the measurement moments."""
    systems = [
        code_system(
            canon,
            f"zrm-{version}",
            f"ZRM{version}Domains",
            f"Zelfredzaamheid-Matrix {version}: domeinen",
            f"The {len(domains)} life domains of the Self-Sufficiency Matrix (ZRM) version "
            f"{version}. Never converted into the domains of another version.",
            domains,
            version=version,
        )
        for version, domains in DOMAINS.items()
    ]
    systems.append(
        code_system(
            canon,
            "zrm-scale",
            "ZRMScale",
            "Zelfredzaamheid-Matrix: schaal",
            "The five levels of self-sufficiency of the ZRM, the same in every version.",
            tuple((str(score), nl, en) for score, nl, en in SCALE),
        )
    )
    systems.append(
        code_system(
            canon,
            "zrm-moment",
            "ZRMMoment",
            "Zelfredzaamheid-Matrix: meetmoment",
            "When a ZRM measurement was taken: at intake, during the care, or at exit.",
            MOMENTS,
        )
    )
    return systems


def zrm_value_sets(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """A value set with all codes of each ZRM code system."""
    names = [f"zrm-{v}" for v in VERSIONS] + ["zrm-scale", "zrm-moment"]
    both = {
        "resourceType": "ValueSet",
        "id": "zrm-domains",
        "url": canon.value_set("zrm-domains"),
        "name": "ZRMDomains",
        "title": "ZRM-domeinen (2013 of 2017)",
        "status": "active",
        "publisher": "Eigen Dossier",
        "description": "The domains of either ZRM version; each code keeps its own version.",
        "compose": {"include": [{"system": _system(canon, v), "version": v} for v in VERSIONS]},
    }
    return [*(whole_value_set(canon, name) for name in names), both]


def zrm_questionnaires(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """One Questionnaire per version: the moment, then one choice item per domain."""
    return [
        {
            "resourceType": "Questionnaire",
            "id": f"zrm-{version}",
            "url": _questionnaire(canon, version),
            "version": version,
            "name": f"ZRM{version}",
            "title": f"Zelfredzaamheid-Matrix {version}",
            "status": "active",
            "publisher": "Eigen Dossier",
            "language": "nl",
            "subjectType": ["Patient"],
            "description": (
                f"Scoring of the {len(domains)} domains of the ZRM {version}, each from 1 "
                "(acute problematiek) to 5 (volledig zelfredzaam), at one moment."
            ),
            "item": [
                {
                    "linkId": "moment",
                    "text": "Meetmoment",
                    "type": "choice",
                    "required": True,
                    "answerValueSet": canon.value_set("zrm-moment"),
                },
                *(
                    {
                        "linkId": _link(version, code),
                        "code": [coding(_system(canon, version), code, nl)],
                        "text": nl,
                        "type": "choice",
                        "required": False,
                        "answerValueSet": canon.value_set("zrm-scale"),
                    }
                    for code, nl, _ in domains
                ),
            ],
        }
        for version, domains in DOMAINS.items()
    ]


# -- assessments ----------------------------------------------------------------------------


def zrm_to_fhir(assessment: ZrmAssessment, canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The QuestionnaireResponse, an Observation per domain and a Goal per target."""
    version = assessment.version
    system = _system(canon, version)
    day = assessment.date.isoformat()
    subject = {"reference": f"Patient/{assessment.patient}"}
    performer = {"reference": assessment.performer}
    moment = _MOMENT_NL[assessment.moment]
    order = [code for code, _, _ in DOMAINS[version]]
    scored = [code for code in order if code in assessment.scores]
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": assessment.id,
        "meta": {"profile": [canon.profile("zrm-questionnaireresponse")]},
        "text": narrative(
            f"ZRM {version}: {moment.lower()} op {day}",
            [("Cliënt", subject["reference"]), ("Afgenomen door", assessment.performer)],
            [
                f"{_NAMES[version][code]}: {assessment.scores[code]} "
                f"({_SCALE_NL[assessment.scores[code]]})"
                for code in scored
            ],
        ),
        "questionnaire": f"{_questionnaire(canon, version)}|{version}",
        "status": "completed",
        "subject": subject,
        "authored": day,
        "author": performer,
        "item": [
            {
                "linkId": "moment",
                "text": "Meetmoment",
                "answer": [
                    {
                        "valueCoding": coding(
                            canon.code_system("zrm-moment"), assessment.moment, moment
                        )
                    }
                ],
            },
            *(
                {
                    "linkId": _link(version, code),
                    "text": _NAMES[version][code],
                    "answer": [
                        {
                            "valueCoding": coding(
                                canon.code_system("zrm-scale"),
                                str(assessment.scores[code]),
                                _SCALE_NL[assessment.scores[code]],
                            )
                        }
                    ],
                }
                for code in scored
            ),
        ],
    }
    resources: list[dict[str, Any]] = [response]
    for code in scored:
        score = assessment.scores[code]
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{assessment.id}-{code}",
                "meta": {"profile": [canon.profile("zrm-observation")]},
                "text": narrative(
                    f"ZRM {version} {_NAMES[version][code]}: {score} ({_SCALE_NL[score]})",
                    [("Meetmoment", moment), ("Datum", day), ("Cliënt", subject["reference"])],
                ),
                "extension": [
                    {
                        "url": canon.extension("zrm-moment"),
                        "valueCode": assessment.moment,
                    }
                ],
                "status": "final",
                "category": [{"coding": [coding(_SURVEY, "survey", "Survey")]}],
                "code": {"coding": [coding(system, code, _NAMES[version][code])]},
                "subject": subject,
                "effectiveDateTime": day,
                "performer": [performer],
                "valueInteger": score,
                "derivedFrom": [{"reference": f"QuestionnaireResponse/{assessment.id}"}],
            }
        )
    for code in order:
        if code not in assessment.targets:
            continue
        target = assessment.targets[code]
        resources.append(
            {
                "resourceType": "Goal",
                "id": f"{assessment.id}-target-{code}",
                "meta": {"profile": [canon.profile("zrm-goal")]},
                "text": narrative(
                    f"Streefscore {_NAMES[version][code]}: {target} ({_SCALE_NL[target]})",
                    [("Vastgesteld op", day), ("Cliënt", subject["reference"])],
                ),
                "lifecycleStatus": "active",
                "description": {
                    "text": f"Streefscore ZRM {version} {_NAMES[version][code]}: {target}"
                },
                "subject": subject,
                "startDate": day,
                "expressedBy": performer,
                "target": [
                    {
                        "measure": {"coding": [coding(system, code, _NAMES[version][code])]},
                        "detailInteger": target,
                    }
                ],
                "addresses": [{"reference": f"Observation/{assessment.id}-{code}"}],
            }
        )
    return resources


def zrm_from_fhir(
    resources: Iterable[dict[str, Any]], canon: Canon = DEFAULT_CANON
) -> ZrmAssessment:
    """The assessment in a QuestionnaireResponse and its Goals; Observations, when given,
    must say the same as the response."""
    items = list(resources)
    responses = [
        r for r in items if isinstance(r, dict) and r.get("resourceType") == "QuestionnaireResponse"
    ]
    if len(responses) != 1:
        fail("Exactly one ZRM QuestionnaireResponse is required", "QuestionnaireResponse")
    read = Reader(responses[0], "QuestionnaireResponse", canon.profile("zrm-questionnaireresponse"))
    questionnaire = read.text("questionnaire") or ""
    version = next(
        (v for v in VERSIONS if questionnaire == f"{_questionnaire(canon, v)}|{v}"), None
    )
    if version is None:
        fail(
            "questionnaire must be a ZRM questionnaire with its version", read.path("questionnaire")
        )
    if read.get("status") != "completed":
        fail("status must be completed", read.path("status"))
    patient = reference_id(read.need("subject"), "Patient", read.path("subject"))
    performer = reference_to(
        read.need("author"), ("Practitioner", "PractitionerRole"), read.path("author")
    )
    day = date_of(read.text("authored") or "", read.path("authored"))
    moment: str | None = None
    scores: dict[str, int] = {}
    links = {_link(version, code): code for code in _NAMES[version]}
    for index, item in enumerate(read.need("item")):
        where = f"QuestionnaireResponse.item[{index}]"
        link = item.get("linkId") if isinstance(item, dict) else None
        answers = item.get("answer") if isinstance(item, dict) else None
        if not isinstance(answers, list) or len(answers) != 1 or not isinstance(answers[0], dict):
            fail("Each item has exactly one answer", f"{where}.answer")
        value = answers[0].get("valueCoding")
        if not isinstance(value, dict):
            fail("The answer is a valueCoding", f"{where}.answer[0]")
        if link == "moment":
            if (
                value.get("system") != canon.code_system("zrm-moment")
                or value.get("code") not in _MOMENT_NL
            ):
                fail("The moment is intake, progress or exit", f"{where}.answer[0].valueCoding")
            moment = str(value["code"])
        elif link in links:
            code = value.get("code")
            if value.get("system") != canon.code_system("zrm-scale") or code not in {
                "1",
                "2",
                "3",
                "4",
                "5",
            }:
                fail("A ZRM score is 1 to 5 from the ZRM scale", f"{where}.answer[0].valueCoding")
            if links[link] in scores:
                fail("A domain is scored once", f"{where}.linkId")
            scores[links[link]] = int(str(code))
        else:
            fail(f"Not an item of the ZRM {version}", f"{where}.linkId")
    if moment is None:
        fail("The moment (intake, progress, exit) is required", "QuestionnaireResponse.item")
    targets = _targets(items, canon, version, patient, scores)
    assessment = ZrmAssessment(
        id=read.text("id") or "",
        version=version,
        patient=patient,
        performer=performer,
        moment=moment,
        date=day,
        scores=scores,
        targets=targets,
    )
    _agree(items, assessment, canon)
    return assessment


def _targets(
    items: list[dict[str, Any]], canon: Canon, version: str, patient: str, scores: Mapping[str, int]
) -> dict[str, int]:
    targets: dict[str, int] = {}
    system = _system(canon, version)
    for goal in (r for r in items if r.get("resourceType") == "Goal"):
        read = Reader(goal, "Goal", canon.profile("zrm-goal"))
        if reference_id(read.need("subject"), "Patient", read.path("subject")) != patient:
            fail("The target is for the same client", read.path("subject"))
        target = read.need("target")
        if not isinstance(target, list) or len(target) != 1 or not isinstance(target[0], dict):
            fail("A ZRM goal has one target", read.path("target"))
        domain = read.the_code(
            target[0].get("measure"), system, "Goal.target[0].measure", _NAMES[version]
        )
        value = target[0].get("detailInteger")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
            fail("A target score is an integer from 1 to 5", "Goal.target[0].detailInteger")
        if domain not in scores:
            fail("A target score needs a score for its domain", "Goal.target[0].measure")
        targets[domain] = value
    return targets


def _agree(items: list[dict[str, Any]], assessment: ZrmAssessment, canon: Canon) -> None:
    """Observations given beside the response must carry the same scores."""
    system = _system(canon, assessment.version)
    for index, observation in enumerate(r for r in items if r.get("resourceType") == "Observation"):
        read = Reader(observation, "Observation", canon.profile("zrm-observation"))
        domain = read.the_code(
            read.need("code"), system, "Observation.code", _NAMES[assessment.version]
        )
        if observation.get("valueInteger") != assessment.scores.get(domain):
            raise MappingError(
                f"Observation {index} scores {domain} differently from the response",
                "Observation.valueInteger",
            )


# -- the progress view ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZrmPoint:
    """One score of one domain at one moment."""

    date: str
    score: int
    moment: str | None
    observation: str


def zrm_progress(
    observations: Iterable[dict[str, Any]], canon: Canon = DEFAULT_CANON
) -> dict[str, dict[str, list[ZrmPoint]]]:
    """Scores over time: version -> domain -> points in date order (other
    Observations, and a value off the five-point scale, are passed over; 2013 and 2017
    stay apart)."""
    series: dict[str, dict[str, list[ZrmPoint]]] = {}
    systems = {_system(canon, v): v for v in VERSIONS}
    moment_url = canon.extension("zrm-moment")
    for observation in observations:
        if observation.get("status") not in ("final", "amended", "corrected"):
            continue
        value = observation.get("valueInteger")
        for found in observation.get("code", {}).get("coding", []):
            version = systems.get(found.get("system"))
            if (
                version is None
                or found.get("code") not in _NAMES[version]
                or not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= 5
            ):
                continue
            moment = next(
                (
                    e.get("valueCode")
                    for e in observation.get("extension", [])
                    if e.get("url") == moment_url
                ),
                None,
            )
            point = ZrmPoint(
                str(observation.get("effectiveDateTime", "")),
                value,
                moment,
                str(observation.get("id")),
            )
            series.setdefault(version, {}).setdefault(found["code"], []).append(point)
    for domains in series.values():
        for points in domains.values():
            points.sort(key=lambda p: (p.date, p.observation))
    return series
