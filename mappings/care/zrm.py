"""The Zelfredzaamheid-Matrix (ZRM): assessments and the progress view.

Two versions, never converted into each other: 2013 (11 domains) and 2017 (13 domains),
each its own versioned CodeSystem and Questionnaire (:mod:`mappings.care.zrm_codes`). The
scale is 1 (acute problematiek) to 5 (volledig zelfredzaam); a measurement is taken at
intake, during progress, or at exit. An assessment is one QuestionnaireResponse, one
Observation per domain scored (category survey, code the domain, value the score,
derivedFrom the response) and a Goal per target score.
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
    coding,
    date_of,
    fail,
    narrative,
    reference_id,
    reference_to,
)
from mappings.care.zrm_codes import (
    DOMAIN_NAMES,
    DOMAINS,
    MOMENT_NL,
    SCALE_NL,
    SURVEY,
    VERSIONS,
    link_id,
    questionnaire_url,
    zrm_system,
)

__all__ = [
    "ZrmAssessment",
    "ZrmPoint",
    "zrm_from_fhir",
    "zrm_progress",
    "zrm_to_fhir",
]


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
    if assessment.moment not in MOMENT_NL:
        found.append(("The moment is intake, progress or exit", "QuestionnaireResponse.item"))
    if not assessment.scores:
        found.append(("An assessment scores at least one domain", "QuestionnaireResponse.item"))
    names = DOMAIN_NAMES[assessment.version]
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


# -- assessments ----------------------------------------------------------------------------


def zrm_to_fhir(assessment: ZrmAssessment, canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The QuestionnaireResponse, an Observation per domain and a Goal per target."""
    version = assessment.version
    system = zrm_system(canon, version)
    day = assessment.date.isoformat()
    subject = {"reference": f"Patient/{assessment.patient}"}
    performer = {"reference": assessment.performer}
    moment = MOMENT_NL[assessment.moment]
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
                f"{DOMAIN_NAMES[version][code]}: {assessment.scores[code]} "
                f"({SCALE_NL[assessment.scores[code]]})"
                for code in scored
            ],
        ),
        "questionnaire": f"{questionnaire_url(canon, version)}|{version}",
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
                    "linkId": link_id(version, code),
                    "text": DOMAIN_NAMES[version][code],
                    "answer": [
                        {
                            "valueCoding": coding(
                                canon.code_system("zrm-scale"),
                                str(assessment.scores[code]),
                                SCALE_NL[assessment.scores[code]],
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
                    f"ZRM {version} {DOMAIN_NAMES[version][code]}: {score} ({SCALE_NL[score]})",
                    [("Meetmoment", moment), ("Datum", day), ("Cliënt", subject["reference"])],
                ),
                "extension": [
                    {
                        "url": canon.extension("zrm-moment"),
                        "valueCode": assessment.moment,
                    }
                ],
                "status": "final",
                "category": [{"coding": [coding(SURVEY, "survey", "Survey")]}],
                "code": {"coding": [coding(system, code, DOMAIN_NAMES[version][code])]},
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
                    f"Streefscore {DOMAIN_NAMES[version][code]}: {target} ({SCALE_NL[target]})",
                    [("Vastgesteld op", day), ("Cliënt", subject["reference"])],
                ),
                "lifecycleStatus": "active",
                "description": {
                    "text": f"Streefscore ZRM {version} {DOMAIN_NAMES[version][code]}: {target}"
                },
                "subject": subject,
                "startDate": day,
                "expressedBy": performer,
                "target": [
                    {
                        "measure": {"coding": [coding(system, code, DOMAIN_NAMES[version][code])]},
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
        (v for v in VERSIONS if questionnaire == f"{questionnaire_url(canon, v)}|{v}"), None
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
    links = {link_id(version, code): code for code in DOMAIN_NAMES[version]}
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
                or value.get("code") not in MOMENT_NL
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
    system = zrm_system(canon, version)
    for goal in (r for r in items if r.get("resourceType") == "Goal"):
        read = Reader(goal, "Goal", canon.profile("zrm-goal"))
        if reference_id(read.need("subject"), "Patient", read.path("subject")) != patient:
            fail("The target is for the same client", read.path("subject"))
        target = read.need("target")
        if not isinstance(target, list) or len(target) != 1 or not isinstance(target[0], dict):
            fail("A ZRM goal has one target", read.path("target"))
        domain = read.the_code(
            target[0].get("measure"), system, "Goal.target[0].measure", DOMAIN_NAMES[version]
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
    system = zrm_system(canon, assessment.version)
    for index, observation in enumerate(r for r in items if r.get("resourceType") == "Observation"):
        read = Reader(observation, "Observation", canon.profile("zrm-observation"))
        domain = read.the_code(
            read.need("code"), system, "Observation.code", DOMAIN_NAMES[assessment.version]
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
    systems = {zrm_system(canon, v): v for v in VERSIONS}
    moment_url = canon.extension("zrm-moment")
    for observation in observations:
        if observation.get("status") not in ("final", "amended", "corrected"):
            continue
        value = observation.get("valueInteger")
        for found in observation.get("code", {}).get("coding", []):
            version = systems.get(found.get("system"))
            if (
                version is None
                or found.get("code") not in DOMAIN_NAMES[version]
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
