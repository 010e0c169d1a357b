"""A search's page in one statement (ADR 0044): the same page, total, next page and
patients as the statements of :func:`run_search`, with the access epoch beside them; on
both databases (the gateway takes this way on PostgreSQL only, where a statement is a
round trip)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.interactions.model import Services
from gateway.search.execute import Page, one_statement_page, run_search
from gateway.search.params import SearchRequest, parse_search
from gateway.store.access import AccessFilter
from tests.gateway.search.test_shapes import LOINC, SEARCHES, dossiers  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("dossiers")

ONLY_ANNA = AccessFilter(
    resource_types=frozenset({"Observation", "CarePlan", "Patient"}),
    patients=frozenset({"anna"}),
    compartment_types=frozenset({"Observation", "CarePlan", "Patient"}),
)


def _request(
    services: Services, resource_type: str, query: list[tuple[str, str]], **page: int | str
) -> SearchRequest:
    extra = [(f"_{name}", str(value)) for name, value in page.items()]
    return parse_search(resource_type, [*query, *extra], services.registry)


def _both(
    services: Services, request: SearchRequest, access: AccessFilter, owned: bool = False
) -> tuple[Page, tuple[Page, int | None] | None, int | None]:
    """The page as :func:`run_search` reads it, as one statement reads it, and the epoch
    as a statement of its own reads it; all in one snapshot."""
    with services.store.read() as session:
        expected = run_search(session.connection, services.compiler, request, access, owned=owned)
        found = one_statement_page(
            session.driver_rows, session.dialect, services.compiler, request, access, owned=owned
        )
        return expected, found, session.access_epoch()


def _summary(page: Page) -> tuple[Any, ...]:
    return (
        page.total,
        page.has_next,
        [(m.pk, m.res_type, m.res_id, m.content, m.patients) for m in page.matches],
    )


@pytest.mark.parametrize("access", [AccessFilter.unrestricted(), ONLY_ANNA], ids=["open", "anna"])
def test_every_search_of_a_shape_has_the_same_page_in_one_statement(
    services: Services, access: AccessFilter
) -> None:
    for resource_type, query in SEARCHES:
        for count, offset in ((100, 0), (2, 0), (2, 2), (1, 5), (3, 40)):
            request = _request(services, resource_type, query, count=count, offset=offset)
            expected, found, epoch = _both(services, request, access)
            assert found is not None, query
            page, seen = found
            assert _summary(page) == _summary(expected), (query, count, offset)
            assert seen == epoch


@pytest.mark.parametrize("sort", ["date", "-date", "_id", "-_lastUpdated", "code,-date", "status"])
def test_a_sorted_page_in_one_statement_is_the_same_page(services: Services, sort: str) -> None:
    """Sorted by a parameter (the least or greatest of its index rows), by the id, by the
    time of the last update, by several: the same order, ties broken by the key."""
    searches = [
        ("Observation", [("subject", "Patient/anna")]),
        ("Observation", [("code", "8867-4")]),
        ("Observation", [("date", "ge2024-03")]),
        ("Observation", [("subject", "Patient/anna"), ("code", f"{LOINC}|8867-4")]),
    ]
    for access in (AccessFilter.unrestricted(), ONLY_ANNA):
        for resource_type, query in searches:
            for count, offset in ((100, 0), (2, 0), (2, 3), (4, 9)):
                request = _request(
                    services, resource_type, [*query, ("_sort", sort)], count=count, offset=offset
                )
                expected, found, _ = _both(services, request, access)
                assert found is not None, query
                assert _summary(found[0]) == _summary(expected), (query, sort, count, offset)


def test_a_page_past_its_last_match_still_has_the_total(services: Services) -> None:
    """Where :func:`run_search` counts apart (its keys say nothing past the last match),
    the one statement counts the matches it read."""
    request = _request(services, "Observation", [("subject", "Patient/anna")], offset=500)
    expected, found, _ = _both(services, request, AccessFilter.unrestricted())
    assert found is not None
    page = found[0]
    assert page.matches == [] and not page.has_next
    assert page.total == expected.total == 11  # ten of every third, and one of no system


def test_the_total_is_left_out_when_none_is_asked_and_patients_come_when_owned(
    services: Services,
) -> None:
    query = [("code", f"{LOINC}|8867-4")]
    request = _request(services, "Observation", query, count=2, total="none")
    expected, found, _ = _both(services, request, ONLY_ANNA, owned=True)
    assert found is not None
    page = found[0]
    assert page.total is None and expected.total is None
    assert page.has_next and len(page.matches) == 2
    assert _summary(page) == _summary(expected)
    assert all(m.patients == frozenset({"anna"}) for m in page.matches)


def test_an_empty_page_has_its_epoch_and_a_total_of_nothing(services: Services) -> None:
    request = _request(services, "Observation", [("subject", "Patient/nobody")])
    _, found, epoch = _both(services, request, ONLY_ANNA)
    assert found is not None
    page, seen = found
    assert (page.total, page.matches, page.has_next, seen) == (0, [], False, epoch)
    annas = _request(services, "Observation", [("subject", "Patient/anna")])
    _, nothing, _ = _both(services, annas, AccessFilter.nothing())  # matches, none visible
    assert nothing is not None
    assert (nothing[0].total, nothing[0].matches, nothing[1]) == (0, [], epoch)


@pytest.mark.parametrize(
    "query",
    [
        [("subject", "Patient/anna"), ("_include", "Observation:subject")],
        [("_revinclude", "Observation:subject"), ("family", "de vries")],
        [("subject", "Patient/anna"), ("_summary", "count")],
        [("subject", "Patient/anna"), ("_count", "0")],
        [("subject.family", "de Vries")],  # a chain: no shape
    ],
)
def test_a_search_of_more_than_one_statement_is_left_to_run_search(
    services: Services, query: list[tuple[str, str]]
) -> None:
    resource_type = "Patient" if query[0][0] == "_revinclude" else "Observation"
    request = parse_search(resource_type, query, services.registry)
    _, found, _ = _both(services, request, AccessFilter.unrestricted())
    assert found is None
