"""A write's rows in bulk: on PostgreSQL, sixteen rows or more of one table go by COPY
(ADR 0026), fewer by an INSERT each; both must store exactly the same rows, whatever the
values hold (tabs, newlines, backslashes, COPY's own null marker, non-ASCII text)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from gateway.app import build_services
from gateway.interactions.model import Services
from gateway.settings import Settings
from gateway.store.schema import INDEX_TABLES, patient_compartment, resources
from gateway.store.session_base import _COPY_FROM

#: values COPY's text format must escape, and one it reads as NULL unless escaped
AWKWARD = ["tab\there", "line\nbreak", "back\\slash", "\\N", "café ☕ Ĳsselmeer", "quote'\"", ""]


@pytest.fixture()
def own(own_database: str) -> Iterator[Services]:
    services = build_services(Settings(database_url=own_database), migrate=True)
    yield services
    services.store.dispose()


def _patient(res_id: str, n: int) -> dict[str, Any]:
    awkward = AWKWARD[n % len(AWKWARD)] or "x"
    return {
        "resourceType": "Patient",
        "id": res_id,
        "name": [{"family": f"{awkward} {n}", "given": [awkward, f"g{n}"]}],
        "identifier": [{"system": "http://example.org/ids", "value": f"{awkward}-{n}"}],
        "telecom": [{"system": "email", "value": f"p{n}@example.org"}],
        "birthDate": f"19{50 + n % 40}-01-0{1 + n % 9}",
        "address": [{"line": [awkward], "city": "Zwolle"}],
    }


def _observation(res_id: str, patient: str, n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": res_id,
        "status": "final",
        "code": {
            "coding": [{"system": "http://example.org/c", "code": f"c{n}"}],
            "text": AWKWARD[n % len(AWKWARD)],
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2025-03-01",
        "valueQuantity": {
            "value": n,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


def _rows_of(services: Services, res_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every index and compartment row of the resource ``res_id``, without its key."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with services.store.engine.connect() as connection:
        pk = connection.execute(
            select(resources.c.pk).where(resources.c.res_id == res_id)
        ).scalar_one()
        for name, table in {**INDEX_TABLES, "compartment": patient_compartment}.items():
            key = table.c.res_pk
            columns = [c for c in table.c if c is not key]
            rows = connection.execute(select(*columns).where(key == pk)).all()
            out[name] = sorted((tuple(row) for row in rows), key=repr)
    return out


def test_rows_written_in_bulk_equal_rows_written_one_resource_at_a_time(own: Services) -> None:
    count = 24
    batch = [_patient(f"bulk-{n}", n) for n in range(count)]
    batch += [_observation(f"bulk-o{n}", f"bulk-{n}", n) for n in range(count)]
    own.store.write(lambda session: session.add_new(batch))
    for n in range(count):
        own.store.write(lambda session, n=n: session.add_new([_patient(f"one-{n}", n)]))
        own.store.write(
            lambda session, n=n: session.add_new([_observation(f"one-o{n}", f"one-{n}", n)])
        )
    assert count * 2 > _COPY_FROM  # the batch's rows of a table are more than COPY's threshold
    for n in range(count):
        for bulk, one in ((f"bulk-{n}", f"one-{n}"), (f"bulk-o{n}", f"one-o{n}")):
            got, expected = _rows_of(own, bulk), _rows_of(own, one)
            expected_text = repr(expected).replace(f"one-{n}", f"bulk-{n}")
            assert repr(got) == expected_text, bulk
            assert any(got.values())


def test_an_awkward_value_written_in_bulk_is_stored_as_written(own: Services) -> None:
    batch = [_patient(f"p{n}", n) for n in range(3 * len(AWKWARD))]
    own.store.write(lambda session: session.add_new(batch))
    with own.store.engine.connect() as connection:
        families = connection.execute(
            select(INDEX_TABLES["string"].c.value_exact).where(
                INDEX_TABLES["string"].c.param == "family"
            )
        ).scalars()
        found = set(families)
    for n, patient in enumerate(batch):
        assert patient["name"][0]["family"] in found, n
