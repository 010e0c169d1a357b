"""The access-filter seam: a restricted context sees only what the filter admits, in every
interaction, and counts, paging, includes, chains and _has reveal nothing else.

Interactions are called directly (no HTTP), with a real store, as the consent layer will.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.interactions.dispatch import Dispatcher, dispatch
from gateway.interactions.model import Context, FhirRequest, FhirResponse, Services
from gateway.interactions.privileged import system_context
from gateway.store.access import AccessFilter
from mappings.core.errors import NotFound

COMPARTMENT = frozenset({"Patient", "Observation", "CarePlan"})


def call(
    context: Context,
    method: str,
    path: str,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
) -> FhirResponse:
    return dispatch(context, FhirRequest(method, path, query or [], {}, body))


def bundle_ids(response: FhirResponse) -> list[str]:
    import orjson

    body = (
        response.body if isinstance(response.body, dict) else orjson.loads(response.body or b"{}")
    )
    data = orjson.loads(orjson.dumps(body))
    return sorted(
        e["resource"]["id"]
        for e in data.get("entry", [])
        if "resource" in e and e["resource"]["resourceType"] != "OperationOutcome"
    )


@pytest.fixture()
def two_dossiers(services: Services) -> Services:
    open_context = system_context(services, "test set-up", Dispatcher())
    call(
        open_context,
        "PUT",
        "Organization/team",
        body={"resourceType": "Organization", "id": "team", "name": "Buurtteam"},
    )
    for patient in ("anna", "bert"):
        call(
            open_context,
            "PUT",
            f"Patient/{patient}",
            body={
                "resourceType": "Patient",
                "id": patient,
                "gender": "female",
                "managingOrganization": {"reference": "Organization/team"},
            },
        )
        for n in range(3):
            call(
                open_context,
                "PUT",
                f"Observation/{patient}-{n}",
                body={
                    "resourceType": "Observation",
                    "id": f"{patient}-{n}",
                    "status": "final",
                    "code": {"text": "zrm"},
                    "subject": {"reference": f"Patient/{patient}"},
                },
            )
    return services


@pytest.fixture()
def anna_only(two_dossiers: Services) -> Context:
    return Context(
        two_dossiers,
        AccessFilter(patients=frozenset({"anna"}), compartment_types=COMPARTMENT),
        Dispatcher(),
    )


def test_search_counts_and_pages_only_what_is_allowed(anna_only: Context) -> None:
    response = call(anna_only, "GET", "Observation", [("_count", "2")])
    assert response.body["total"] == 3  # type: ignore[index]
    assert all(i.startswith("anna") for i in bundle_ids(response))
    count = call(anna_only, "GET", "Observation", [("_summary", "count")])
    assert count.body["total"] == 3  # type: ignore[index]
    assert call(anna_only, "GET", "Patient", [("gender", "female")]).body["total"] == 1  # type: ignore[index]


def test_read_vread_and_history_of_a_denied_resource_say_not_found(anna_only: Context) -> None:
    for path in (
        "Observation/bert-0",
        "Observation/bert-0/_history/1",
        "Observation/bert-0/_history",
        "Patient/bert",
    ):
        with pytest.raises(NotFound):
            call(anna_only, "GET", path)
    history = call(anna_only, "GET", "Observation/_history")
    assert all(i.startswith("anna") for i in bundle_ids(history))


def test_includes_chains_and_has_reveal_nothing_denied(anna_only: Context) -> None:
    revinclude = call(anna_only, "GET", "Patient", [("_revinclude", "Observation:subject")])
    assert bundle_ids(revinclude) == ["anna", "anna-0", "anna-1", "anna-2"]
    include = call(anna_only, "GET", "Observation", [("_include", "Observation:subject")])
    assert "bert" not in bundle_ids(include)
    chained = call(anna_only, "GET", "Observation", [("subject:Patient._id", "bert")])
    assert chained.body["total"] == 0  # type: ignore[index]
    has = call(anna_only, "GET", "Organization", [("_has:Patient:organization:_id", "bert")])
    assert has.body["total"] == 0  # type: ignore[index]
    assert call(anna_only, "GET", "Organization").body["total"] == 1  # type: ignore[index]


def test_a_denied_resource_cannot_be_overwritten_or_deleted(anna_only: Context) -> None:
    body = {
        "resourceType": "Observation",
        "id": "bert-0",
        "status": "final",
        "code": {"text": "overwritten"},
        "subject": {"reference": "Patient/bert"},
    }
    with pytest.raises(NotFound):
        call(anna_only, "PUT", "Observation/bert-0", body=body)
    with pytest.raises(NotFound):
        call(anna_only, "DELETE", "Observation/bert-0")


def test_type_and_resource_exclusions(two_dossiers: Services) -> None:
    context = Context(
        two_dossiers,
        AccessFilter(
            resource_types=frozenset({"Patient"}), excluded=frozenset({("Patient", "bert")})
        ),
        Dispatcher(),
    )
    assert bundle_ids(call(context, "GET", "Patient")) == ["anna"]
    assert call(context, "GET", "Observation").body["total"] == 0  # type: ignore[index]
    assert call(context, "GET", "", [("_id", "anna-0,anna,team")]).body["total"] == 1  # type: ignore[index]


def test_statements_of_different_filters_never_share_their_compiled_sql(
    two_dossiers: Services,
) -> None:
    """A filter is known to SQLAlchemy's cache of compiled statements by a key of its own
    (ADR 0022): searches of the same shape under filters that differ only in their
    values, taken in turns, each see their own dossier, again and again."""

    def only(patient: str) -> Context:
        access = AccessFilter(patients=frozenset({patient}), compartment_types=COMPARTMENT)
        return Context(two_dossiers, access, Dispatcher())

    anna, bert = only("anna"), only("bert")
    for _ in range(3):
        for context, patient in ((anna, "anna"), (bert, "bert")):
            response = call(context, "GET", "Observation", [("code:text", "zrm")])
            assert bundle_ids(response) == [f"{patient}-{n}" for n in range(3)]
            assert response.body["total"] == 3  # type: ignore[index]
    assert anna.access.predicate() is anna.access.predicate()  # built once, kept
    assert anna.access.predicate() is not bert.access.predicate()


def test_one_decision_makes_one_filter_object_in_a_process() -> None:
    """Equal decisions give the very same filter (ADR 0033): the compiled statements' caches
    find it by identity, never by walking an equal copy's grants; another decision gives
    another filter, and the scopes of a token text are parsed into one object."""
    from consent.decision import Reach
    from consent.scopes import granted_scopes

    def decided(patient: str) -> AccessFilter:
        scope = Reach(
            types=frozenset({"Observation"}),
            patients=frozenset({patient}),
            compartment_types=COMPARTMENT,
            grants=(),
            conditional=(),
        )
        return AccessFilter.of(scope, ())

    assert decided("anna") is decided("anna")
    assert decided("anna") is not decided("bert")
    assert decided("anna") != decided("bert")
    text = "system/Observation.rs system/Patient.r"
    assert granted_scopes(text) is granted_scopes(" ".join(text.split()))
    assert granted_scopes(text) == granted_scopes("system/Observation.rs system/Patient.r")
    assert granted_scopes(text) != granted_scopes("system/Observation.rs")
