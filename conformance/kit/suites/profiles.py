"""``profiles``: the care profiles accept good resources and refuse bad ones, by name.

The good examples are the demo dossier's (``mappings.care.demo``, built with the domain API
so each fits its profile), moved into the dossier of the client who logged in; each bad one
is a good one with one thing wrong. The server is asked with ``POST [type]/$validate``
(nothing is stored): a good one gets no error, a bad one an error whose expression or text
names the element at fault.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from conformance.kit.model import FHIR, OURS, check, expect
from conformance.kit.session import Answer, Session
from mappings.care.base import Canon
from mappings.care.demo import demo_dossier

#: the checks join the catalogue when this module is imported; nothing is imported from it
__all__: list[str] = []

Mutation = Callable[[dict[str, Any]], None]


def _example(session: Session, profile: str) -> dict[str, Any]:
    """The demo's first resource claiming ``profile``, in the logged-in client's dossier."""
    _, patient = session.patient()
    canon = Canon(session.options.canonical_base)
    url = canon.profile(profile)
    for resource in demo_dossier(dt.date.today(), canon):
        if url in (resource.get("meta") or {}).get("profile", []):
            found = copy.deepcopy(resource)
            found.pop("id", None)
            found["subject"] = {"reference": f"Patient/{patient}"}
            return found
    raise LookupError(f"the demo has no {profile}")


def _validate(session: Session, resource: dict[str, Any]) -> Answer:
    token, _ = session.patient()
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource}]}
    answer = session.fhir(
        "POST", f"{resource['resourceType']}/$validate", token=token, json_body=body
    )
    expect(answer.resource_type == "OperationOutcome", "$validate answered no OperationOutcome")
    return answer


def _errors(answer: Answer) -> list[dict[str, Any]]:
    return [i for i in answer.body.get("issue", []) if i.get("severity") in ("error", "fatal")]


def _judge(session: Session, profile: str, bad: dict[str, tuple[Mutation, str]]) -> None:
    good = _example(session, profile)
    answer = _validate(session, good)
    errors = _errors(answer)
    expect(
        not errors,
        f"the good {profile} is refused: {errors[0].get('diagnostics', '') if errors else ''}",
    )
    for what, (mutate, element) in bad.items():
        resource = copy.deepcopy(good)
        mutate(resource)
        errors = _errors(_validate(session, resource))
        expect(errors, f"a {profile} with {what} is accepted")
        named = " ".join(
            " ".join(i.get("expression", [])) + " " + str(i.get("diagnostics", "")) for i in errors
        )
        expect(element in named, f"a {profile} with {what}: no error names {element}")


def _set(path: str, value: Any) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        resource[path] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        resource.pop(path, None)

    return mutate


_PROFILE_DOCS = f"{OURS}/mappings.md"
_VALIDATE = f"{FHIR}/resource-operation-validate.html"


@check(
    "profiles-01",
    "ZRM observation",
    requirement="A ZRM score is an integer 1..5 of a ZRM domain (profile zrm-observation)",
    link=_PROFILE_DOCS,
    inputs="--patient-login; the demo's ZRM observation",
    asserts="the good one validates; a score of 9 is refused naming Observation.valueInteger; "
    "no score at all naming Observation.value[x]",
)
def zrm_observation(session: Session) -> None:
    _judge(
        session,
        "zrm-observation",
        {
            "a score of 9": (_set("valueInteger", 9), "Observation.valueInteger"),
            "no score": (_drop("valueInteger"), "Observation.value"),
        },
    )


@check(
    "profiles-02",
    "Krachtplan",
    requirement="A krachtplan has a period, its plan kind and its goals (profile krachtplan)",
    link=_PROFILE_DOCS,
    inputs="--patient-login; the demo's krachtplan",
    asserts="the good one validates; without a period it is refused naming CarePlan.period; "
    "without a category naming CarePlan.category",
)
def krachtplan(session: Session) -> None:
    _judge(
        session,
        "krachtplan",
        {
            "no period": (_drop("period"), "CarePlan.period"),
            "no category": (_drop("category"), "CarePlan.category"),
        },
    )


@check(
    "profiles-03",
    "Crisis plan",
    requirement="A crisis plan says who acts and what they do (profile crisisplan)",
    link=_PROFILE_DOCS,
    inputs="--patient-login; the demo's crisis plan",
    asserts="the good one validates; without activities it is refused naming CarePlan.activity",
)
def crisisplan(session: Session) -> None:
    _judge(
        session,
        "crisisplan",
        {"no activities": (_drop("activity"), "CarePlan.activity")},
    )


@check(
    "profiles-04",
    "Visit",
    requirement="A visit has its contact mode, period and participants (profile visit)",
    link=_PROFILE_DOCS,
    inputs="--patient-login; the demo's visit",
    asserts="the good one validates; without participants it is refused naming "
    "Encounter.participant; without a period naming Encounter.period",
)
def visit(session: Session) -> None:
    _judge(
        session,
        "visit",
        {
            "no participants": (_drop("participant"), "Encounter.participant"),
            "no period": (_drop("period"), "Encounter.period"),
        },
    )


@check(
    "profiles-05",
    "$validate does not store",
    requirement="$validate checks a resource without creating it",
    link=_VALIDATE,
    inputs="--patient-login",
    asserts="after validating a good ZRM observation, a search of the client's ZRM "
    "observations finds no new one",
    needs=("profiles-01",),
)
def validate_stores_nothing(session: Session) -> None:
    token, patient = session.patient()
    query = f"Observation?subject=Patient/{patient}&_summary=count"
    before = session.fhir("GET", query, token=token).body.get("total")
    _validate(session, _example(session, "zrm-observation"))
    after = session.fhir("GET", query, token=token).body.get("total")
    expect(before == after, f"the count went from {before} to {after}")
