"""The Zelfredzaamheid-Matrix (ZRM) as code: versions, domains, the scale, the measurement
moments, and the definition resources made of them (a CodeSystem and a Questionnaire per
version, the scale, the moments, their value sets).

Two versions, never converted into each other: 2013 (11 domains) and 2017 (13 domains).
The scale is 1 (acute problematiek) to 5 (volledig zelfredzaam). Dutch names and labels
after the ZRM handbook (GGD Amsterdam); English displays of the four domains new in 2017
are our own translation.
"""

from __future__ import annotations

from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    code_system,
    coding,
    whole_value_set,
)

__all__ = [
    "DOMAINS",
    "DOMAIN_NAMES",
    "MOMENTS",
    "MOMENT_NL",
    "SCALE",
    "SCALE_NL",
    "SURVEY",
    "VERSIONS",
    "link_id",
    "questionnaire_url",
    "zrm_code_systems",
    "zrm_questionnaires",
    "zrm_system",
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

SURVEY = "http://terminology.hl7.org/CodeSystem/observation-category"
DOMAIN_NAMES = {
    version: {code: nl for code, nl, _ in domains} for version, domains in DOMAINS.items()
}
SCALE_NL = {score: nl for score, nl, _ in SCALE}
MOMENT_NL = {code: nl for code, nl, _ in MOMENTS}


def link_id(version: str, code: str) -> str:
    """An item's linkId carries the version, so no answer can change version."""
    return f"zrm{version}-{code}"


def zrm_system(canon: Canon, version: str) -> str:
    return canon.code_system(f"zrm-{version}")


def questionnaire_url(canon: Canon, version: str) -> str:
    return canon.url("Questionnaire", f"zrm-{version}")


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
        "compose": {"include": [{"system": zrm_system(canon, v), "version": v} for v in VERSIONS]},
    }
    return [*(whole_value_set(canon, name) for name in names), both]


def zrm_questionnaires(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """One Questionnaire per version: the moment, then one choice item per domain."""
    return [
        {
            "resourceType": "Questionnaire",
            "id": f"zrm-{version}",
            "url": questionnaire_url(canon, version),
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
                        "linkId": link_id(version, code),
                        "code": [coding(zrm_system(canon, version), code, nl)],
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
