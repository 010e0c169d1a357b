"""An access-log entry's repeating values indexed once per kind of entry (ADR 0041), searched
over real HTTP: every way a search reads a parameter stored per kind (a value, ``:not``,
``:missing``, a second filter, ``_has``, a sort, paging and totals) finds what one row per
value found; a kind's rows are stored once, whoever writes its entries; a change or a delete
of an entry (the store's, which the API never makes: AuditEvents are read-only there)
leaves the others of its kind as they were. Entries are stored as the log's indexer stores
them (``Session.add_new``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from consent.audit import Access, audit_event
from consent.context import AccessContext
from consent.scopes import Scopes
from gateway.delivery import _index_keys
from gateway.interactions.model import Services
from gateway.store.schema import search_kind, search_token, search_uri

JSON = {"Content-Type": "application/fhir+json"}
GP = AccessContext(
    kind="backend",
    client_id="gp-app",
    scopes=Scopes((), frozenset()),
    subject="http://fhir.nl/fhir/NamingSystem/agb|01234567",
    token_id="t1",
    organization="Organization/gp",
    purpose="TREAT",
    network_address="10.0.0.1",
)
AT = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)


def entry(base: str, id_: str, interaction: str, objects: list[str], **how: Any) -> dict[str, Any]:
    """An access-log entry of the GP backend app as the gateway writes it (``how``: its
    outcome, the minute after ``AT``, its patient, its Consents)."""
    access = Access(
        interaction,
        how.get("outcome", "0"),
        AT + dt.timedelta(minutes=how.get("minute", 0)),
        how.get("patient", "p1"),
        objects,
        consents=how.get("consents", ["Consent/c1"]),
    )
    event = audit_event(GP, access, base)
    event["id"] = id_
    return event


def put(client: httpx.Client, resource: dict[str, Any]) -> None:
    path = f"{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=JSON)
    assert response.status_code in (200, 201), response.text


def store(services: Services, *events: dict[str, Any]) -> None:
    """Store ``events`` as the access log's indexer does."""
    services.store.write(lambda session: session.add_new(list(events)))


def ids(client: httpx.Client, query: str) -> list[str]:
    response = client.get(query)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


@pytest.fixture()
def log(client: httpx.Client, base: str, services: Services) -> str:
    """Two Observations of p1 and five entries: three reads of one kind, a search, a refusal
    of another patient's plan without a Consent. The Consents' URL, as entries name them."""
    for n in (1, 2):
        observation = {
            "resourceType": "Observation",
            "id": f"o{n}",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "Patient/p1"},
        }
        put(client, observation)
    entries = [
        entry(base, "e1", "read", ["Observation/o1"], minute=1),
        entry(base, "e2", "read", ["Observation/o2"], minute=2),
        entry(base, "e3", "search-type", ["Observation/o1", "Observation/o2"], minute=3),
        entry(base, "e4", "read", ["CarePlan/k1"], outcome="4", patient="p2", consents=[]),
        entry(base, "e5", "read", ["Observation/o1"], minute=5),
    ]
    store(services, *entries[:2])
    store(services, *entries[2:])
    return f"{base}/Consent/c1"


def test_a_value_stored_per_kind_finds_every_entry_of_the_kinds_that_have_it(
    client: httpx.Client, log: str
) -> None:
    assert sorted(ids(client, "AuditEvent?subtype=read")) == ["e1", "e2", "e4", "e5"]
    assert ids(client, "AuditEvent?subtype=search-type") == ["e3"]
    assert ids(client, "AuditEvent?outcome=4") == ["e4"]
    assert sorted(ids(client, "AuditEvent?outcome:not=4")) == ["e1", "e2", "e3", "e5"]
    assert sorted(ids(client, f"AuditEvent?policy={log}")) == ["e1", "e2", "e3", "e5"]
    assert ids(client, "AuditEvent?policy:missing=true") == ["e4"]
    assert sorted(ids(client, "AuditEvent?policy:missing=false")) == ["e1", "e2", "e3", "e5"]
    assert ids(client, "AuditEvent?subtype=vread") == []


def test_a_value_stored_per_kind_as_a_second_filter_and_from_another_type(
    client: httpx.Client, log: str
) -> None:
    """Driving the query, probed for each candidate, and inside another type's ``_has``."""
    both = ["e3"]
    assert ids(client, "AuditEvent?subtype=search-type&patient=Patient/p1") == both
    assert ids(client, "AuditEvent?patient=Patient/p1&subtype=search-type") == both
    assert ids(client, "AuditEvent?entity=Observation/o2&subtype=read") == ["e2"]
    query = "Observation?_has:AuditEvent:entity:subtype=search-type"
    assert sorted(ids(client, query)) == ["o1", "o2"]
    assert ids(client, "Observation?_has:AuditEvent:entity:outcome=4") == []


def test_pages_and_totals_of_a_value_stored_per_kind_are_exact(
    client: httpx.Client, log: str
) -> None:
    """The lone filter of an open search is read from its index alone (ADR 0040), but not
    one stored per kind, whose kinds' rows are under keys of no resource."""
    counted = client.get("AuditEvent", params={"subtype": "read", "_summary": "count"})
    assert counted.json()["total"] == 4
    seen: list[str] = []
    url: str | None = "AuditEvent?subtype=read&_count=1&_total=accurate"
    while url is not None:
        page = client.get(url).json()
        assert page["total"] == 4
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert sorted(seen) == ["e1", "e2", "e4", "e5"]


def test_a_sort_by_a_value_stored_per_kind(client: httpx.Client, log: str) -> None:
    """read < search-type; ties by key, as every sort."""
    assert ids(client, "AuditEvent?patient=Patient/p1&_sort=subtype") == ["e1", "e2", "e5", "e3"]
    assert ids(client, "AuditEvent?patient=Patient/p1&_sort=-subtype") == ["e3", "e1", "e2", "e5"]
    assert ids(client, "AuditEvent?_sort=outcome,-date") == ["e5", "e3", "e2", "e1", "e4"]


def _kind_rows(services: Services) -> tuple[int, int, int]:
    """(kinds stored, their rows of tokens and URIs, entries naming a kind)."""
    with services.store.engine.connect() as connection:
        kinds = connection.execute(
            select(func.count()).where(search_kind.c.res_pk < 0)
        ).scalar_one()
        rows = sum(
            connection.execute(select(func.count()).where(table.c.res_pk < 0)).scalar_one()
            for table in (search_token, search_uri)
        )
        members = connection.execute(
            select(func.count()).where(search_kind.c.res_pk > 0)
        ).scalar_one()
    return kinds, rows, members


def test_a_kinds_rows_are_stored_once_whoever_writes_its_entries(
    client: httpx.Client, base: str, services: Services, log: str
) -> None:
    """Three kinds for five entries; a process that forgot which kinds are stored (another
    process, a restart) asks the database, and stores none again."""
    kinds, rows, members = _kind_rows(services)
    assert (kinds, members) == (3, 5)
    services.store.known_kinds = set()
    store(services, entry(base, "e6", "read", ["Observation/o2"], minute=6))
    assert _kind_rows(services) == (kinds, rows, members + 1)
    assert services.store.known_kinds  # committed: known again


def test_a_changed_or_deleted_entry_leaves_its_kind_to_the_others(
    client: httpx.Client, base: str, services: Services, log: str
) -> None:
    """A change of an entry indexes it by its new kind; a delete drops its own rows; the
    kind's rows stay for the entries still of it."""
    changed = entry(base, "e1", "read", ["Observation/o1"], outcome="8", minute=1)
    services.store.write(lambda session: session.put(changed, method="PUT"))
    assert ids(client, "AuditEvent?outcome=8") == ["e1"]
    assert sorted(ids(client, "AuditEvent?outcome=0")) == ["e2", "e3", "e5"]
    services.store.write(lambda session: session.delete("AuditEvent", "e2"))
    assert sorted(ids(client, "AuditEvent?subtype=read")) == ["e1", "e4", "e5"]
    assert ids(client, "AuditEvent?outcome=0&subtype=read") == ["e5"]
    kinds, _, members = _kind_rows(services)
    assert (kinds, members) == (4, 4)


def test_a_kind_stored_twice_answers_as_once(
    client: httpx.Client, services: Services, log: str
) -> None:
    """Two transactions that store one new kind at once (two PostgreSQL processes) both
    store its rows: searches, counts, pages and sorts answer as with one copy."""
    with services.store.engine.begin() as connection:
        for table in (search_token, search_uri, search_kind):
            twice = select(*table.c).where(table.c.res_pk < 0)
            connection.execute(table.insert().from_select(list(table.c.keys()), twice))
    assert _kind_rows(services)[0] == 6  # every kind's own row twice
    assert sorted(ids(client, "AuditEvent?subtype=read")) == ["e1", "e2", "e4", "e5"]
    assert sorted(ids(client, "AuditEvent?outcome:not=4")) == ["e1", "e2", "e3", "e5"]
    assert ids(client, "AuditEvent?policy:missing=true") == ["e4"]
    counted = client.get("AuditEvent", params={"subtype": "read", "_summary": "count"})
    assert counted.json()["total"] == 4
    page = client.get("AuditEvent?subtype=read&_count=2&_total=accurate").json()
    assert page["total"] == 4 and len(page["entry"]) == 2
    assert ids(client, "AuditEvent?patient=Patient/p1&_sort=-subtype") == ["e3", "e1", "e2", "e5"]


def test_a_subscriptions_keys_of_an_entry_hold_its_kinds_tokens(
    services: Services, log: str
) -> None:
    """The keys a Subscription's criteria are matched against (``delivery._index_keys``)
    hold the tokens of the entry's kind, as its own would be."""
    with services.store.read() as session:
        keys = _index_keys(session, "AuditEvent", "e4")
    assert ("outcome", "|4") in keys and ("subtype", "*|read") in keys
    assert ("patient", "Patient/p2") in keys
