"""The Consent rules decide the same in SQL (reads, searches) and in Python (writes, explain)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from consent.policy import Request, Target, grant_from
from gateway.interactions.model import Services
from gateway.store.access import AccessFilter, _among_ids_sql
from gateway.store.schema import resources as resources_table
from tests.consents import PSY, classes

ACTOR = {"role": {"text": "GP"}, "reference": {"reference": "Organization/gp"}}
NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def _resources() -> list[dict[str, Any]]:
    """Anna's and Bert's dossiers, and their household's: the same four shapes each; and an
    Observation of nobody's."""
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "anna"},
        {"resourceType": "Patient", "id": "bert"},
        {
            "resourceType": "Group",
            "id": "home",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("anna", "bert")],
        },
    ]
    for owner in ("Patient/anna", "Patient/bert", "Group/home"):
        for i, (kind, label) in enumerate(itertools.product(("Observation", "Goal"), (0, 1))):
            resource: dict[str, Any] = {
                "resourceType": kind,
                "id": f"{owner.split('/')[1]}-{i}",
                "subject": {"reference": owner},
            }
            if kind == "Observation":
                resource.update(status="final", code={"text": "x"})
            else:
                resource.update(lifecycleStatus="active", description={"text": "x"})
            if label:
                resource["meta"] = {"security": [PSY]}
            out.append(resource)
    # of a compartment's type, in no dossier: no client's Consent can open it (ADR 0037)
    out.append(
        {"resourceType": "Observation", "id": "orphan", "status": "final", "code": {"text": "x"}}
    )
    return out


PROVISIONS: list[dict[str, Any]] = [
    {"type": "permit", "actor": [ACTOR]},
    {"type": "permit", "actor": [ACTOR], "class": classes("Observation")},
    {"type": "permit", "actor": [ACTOR], "provision": [{"type": "deny", "securityLabel": [PSY]}]},
    {
        "type": "permit",
        "actor": [ACTOR],
        "class": classes("Goal", "Patient"),
        "provision": [
            {
                "type": "deny",
                "data": [{"meaning": "instance", "reference": {"reference": "Goal/anna-2"}}],
            }
        ],
    },
    {
        "type": "deny",
        "provision": [
            {
                "type": "permit",
                "actor": [ACTOR],
                "securityLabel": [PSY],
                "provision": [{"type": "deny", "class": classes("Goal")}],
            }
        ],
    },
    {"type": "permit", "actor": [ACTOR], "period": {"end": "2020"}},
    {"type": "permit", "actor": [{**ACTOR, "reference": {"reference": "Organization/other"}}]},
]


def _consent(index: int, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": f"c{index}-{patient}",
        "status": "active",
        "patient": {"reference": f"Patient/{patient}"},
        "provision": PROVISIONS[index],
    }


def _visible(services: Services, resources: list[dict[str, Any]], grants: list[Any]) -> set[str]:
    """What the GP sees in SQL; asserting on the way that Python decides each the same, and
    that a read by type and id (its filter's types decided for its type, ADR 0033) decides
    as the filter of a search does, and returns the row's compartment patients."""
    compartment = frozenset({"Patient", "Observation", "Goal", "Group"})
    access = AccessFilter(
        patients=frozenset(), compartment_types=compartment, grants=tuple(g for g in grants if g)
    )
    visible = set()
    with services.store.read() as session:
        located = session.locate([(r["resourceType"], r["id"]) for r in resources])
        members = session.patients_of(list(located.values()))
        for resource in resources:
            key = (resource["resourceType"], resource["id"])
            found = session.current(*key, access)
            in_sql = found is not None
            target = Target.of(resource, members.get(located[key], frozenset()))
            assert in_sql == access.admits(target), (grants, resource["id"])
            searched = session.connection.execute(
                select(resources_table.c.pk).where(
                    resources_table.c.res_type == key[0],
                    resources_table.c.res_id == key[1],
                    access.predicate(),
                )
            ).first()
            assert in_sql == (searched is not None), (grants, resource["id"])
            assert found is None or found.patients == target.patients
            if in_sql:
                visible.add(resource["id"])
    return visible


def test_sql_and_python_decide_alike(services: Services) -> None:
    resources = _resources()

    def load(session: Any) -> None:
        for resource in resources:
            session.put(dict(resource), method="PUT")

    services.store.write(load)
    request = Request(frozenset({"Organization/gp"}), "read", None, NOW)
    for index in range(len(PROVISIONS)):
        anna = grant_from(_consent(index, "anna"), request)
        visible = _visible(services, resources, [anna])
        assert visible == EXPECTED[index], (index, sorted(visible))  # nothing of Bert's
        # the household's shared resources open only when both give the same
        bert = grant_from(_consent(index, "bert"), request)
        both = _visible(services, resources, [anna, bert])
        shared = {v for v in both if v.startswith("home")}
        assert shared == HOUSEHOLD[index], (index, sorted(shared))
    # each member's own rules apply: Anna all; Bert two Consents, Observations, and all
    # without a label (either of a member's Consents may open it, as for one dossier)
    anna_all = grant_from(_consent(0, "anna"), request)
    bert_some = grant_from(_consent(1, "bert"), request)
    bert_unlabelled = grant_from(_consent(2, "bert"), request)
    partly = _visible(services, resources, [anna_all, bert_some])
    assert {v for v in partly if v.startswith("home")} == {"home-0", "home-1"}
    mixed = _visible(services, resources, [anna_all, bert_some, bert_unlabelled])
    assert {v for v in mixed if v.startswith("home")} == {"home", "home-0", "home-1", "home-2"}


EXPECTED = [
    {"anna", "anna-0", "anna-1", "anna-2", "anna-3"},
    {"anna-0", "anna-1"},
    {"anna", "anna-0", "anna-2"},
    {"anna", "anna-3"},
    {"anna-1"},
    set(),
    set(),
]
HOUSEHOLD = [
    {"home", "home-0", "home-1", "home-2", "home-3"},
    {"home-0", "home-1"},
    {"home", "home-0", "home-2"},
    {"home-2", "home-3"},  # the deny names Anna's own Goal only
    {"home-1"},
    set(),
    set(),
]


def test_a_filters_hash_is_kept_and_agrees_with_its_equality() -> None:
    """A filter keys the compiled statements' caches at every read: its hash is worked out
    once, and equal filters (built apart) still hash alike; a changed copy hashes afresh."""
    first = AccessFilter(patients=frozenset({"p1"}), compartment_types=frozenset({"Observation"}))
    again = AccessFilter(patients=frozenset({"p1"}), compartment_types=frozenset({"Observation"}))
    assert first == again and hash(first) == hash(again) and {first: 1}[again] == 1
    other = dataclasses.replace(first, patients=frozenset({"p2"}))
    assert other != first and hash(other) == hash(
        dataclasses.replace(again, patients=frozenset({"p2"}))
    )
    assert hash(first) == hash(first)  # the kept value


def test_each_database_gets_the_form_of_the_filter_it_plans_best() -> None:
    """SQLite tests a row's clients in one probe by the row's key (ADR 0037); PostgreSQL gets
    EXISTS and NOT EXISTS, the first naming the row's type, so that a join from the granted
    dossiers' side reads their entries of that type and not their access log (ADR 0038)."""
    request = Request(frozenset({"Organization/gp"}), "read", None, NOW)
    access = AccessFilter(
        patients=frozenset({"self"}),
        compartment_types=frozenset({"Observation"}),
        grants=(grant_from(_consent(0, "anna"), request),),
    )
    for of_type in (None, "Observation"):
        statement = select(resources_table.c.pk).where(access.predicate(of_type=of_type))
        lite = str(statement.compile(dialect=sqlite.dialect()))
        pg = str(statement.compile(dialect=postgresql.dialect()))
        typed = re.compile(r"patient_compartment_\d+\.res_type = resources\.res_type")
        assert "min(CASE" in lite and "EXISTS" in lite and "NOT (EXISTS" not in lite
        assert not typed.search(lite)
        assert "min(CASE" not in pg and "NOT (EXISTS" in pg
        assert len(typed.findall(pg)) == 2  # the caller's own dossier, and the granted ones


#: ids as FHIR allows them, in an order that tests the runs' bounds: one a prefix of
#: another (``p1``, ``p10``), capitals before small letters, digits, ``-`` and ``.``
_ID_CHARS = "ABCZabcz0129-."
_IDS = st.text(alphabet=_ID_CHARS, min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    granted=st.integers(0, 300).flatmap(lambda n: st.sets(_IDS, min_size=n, max_size=n)),
    others=st.lists(_IDS, max_size=40),
)
def test_sqlites_probe_of_granted_ids_finds_exactly_the_granted(
    granted: set[str], others: list[str]
) -> None:
    """The probe in one string, or past 64 ids in the one run of the sorted ids that may
    hold the row's (ADR 0052), answers as Python's membership, for an id in the set and
    out of it, on a column of SQLite's own type and collation."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE member (patient_id VARCHAR(64) NOT NULL)")
        probes = sorted(granted | set(others))
        connection.executemany("INSERT INTO member VALUES (?)", [(p,) for p in probes])
        sql = _among_ids_sql("member.patient_id", tuple(granted))
        found = connection.execute(f"SELECT patient_id, {sql} FROM member").fetchall()
        assert {p: bool(hit) for p, hit in found} == {p: p in granted for p in probes}
    finally:
        connection.close()


def test_a_practice_of_many_clients_sees_exactly_its_clients_dossiers(services: Services) -> None:
    """Past 64 granting clients the filter's probe searches one run of their ids (ADR
    0052): a read and a search by the GP decide as Python does for the dossiers of 300
    clients, 200 of them granting it, whose ids sort around the runs' bounds."""
    patients = [f"p{n}" for n in range(250)] + [f"P-{n}.x" for n in range(50)]
    resources: list[dict[str, Any]] = []
    for patient in patients:
        resources.append({"resourceType": "Patient", "id": patient})
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"o-{patient}",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{patient}"},
            }
        )

    def load(session: Any) -> None:
        for resource in resources:
            session.put(dict(resource), method="PUT")

    services.store.write(load)
    request = Request(frozenset({"Organization/gp"}), "read", None, NOW)
    granting = patients[::3] + patients[1::3]  # 200 of them, in no order of their ids
    grants = [grant_from(_consent(0, p), request) for p in granting]
    visible = _visible(services, resources, grants)
    assert visible == set(granting) | {f"o-{p}" for p in granting}
