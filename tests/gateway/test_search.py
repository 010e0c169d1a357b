"""Search over real HTTP: every parameter type, modifiers, chains, _has, includes, paging."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.interactions.model import Services
from gateway.loading import load

JSON = {"Content-Type": "application/fhir+json"}


def put(client: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.put(
        f"{resource['resourceType']}/{resource['id']}", json=resource, headers=JSON
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def ids(client: httpx.Client, path: str, **params: Any) -> list[str]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return sorted(
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e["search"]["mode"] == "match"
    )


@pytest.fixture()
def dossier(client: httpx.Client) -> None:
    put(
        client,
        {
            "resourceType": "Organization",
            "id": "praktijk",
            "identifier": [
                {"system": "http://fhir.nl/fhir/NamingSystem/agb-z", "value": "01234567"}
            ],
            "name": "Huisartsenpraktijk De Linde",
        },
    )
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "anna",
            "gender": "female",
            "birthDate": "1950-04-03",
            "active": True,
            "name": [{"family": "de Vries", "given": ["Anna", "Maria"]}],
            "identifier": [
                {
                    "system": "http://fhir.nl/fhir/NamingSystem/bsn",
                    "value": "999911120",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "NI",
                            }
                        ]
                    },
                }
            ],
            "address": [{"city": "Utrecht", "postalCode": "3511AB"}],
            "managingOrganization": {"reference": "Organization/praktijk"},
        },
    )
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "bert",
            "gender": "male",
            "birthDate": "1962",
            "name": [{"family": "Bakker", "given": ["Bért"]}],
            "address": [{"city": "Zwolle"}],
        },
    )
    for index, (patient, value, when, status) in enumerate(
        [
            ("anna", 3, "2026-01-10T09:00:00+01:00", "final"),
            ("anna", 4, "2026-03-15", "final"),
            ("anna", 5, "2026-06", "preliminary"),
            ("bert", 2, "2025-12-31T23:30:00Z", "final"),
        ]
    ):
        put(
            client,
            {
                "resourceType": "Observation",
                "id": f"zrm-{index}",
                "status": status,
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "survey",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [
                        {
                            "system": "http://example.org/zrm",
                            "code": "financien",
                            "display": "Financiën",
                        }
                    ],
                    "text": "ZRM financiën",
                },
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": when,
                "valueQuantity": {
                    "value": value,
                    "system": "http://unitsofmeasure.org",
                    "code": "1",
                },
            },
        )


@pytest.mark.usefixtures("dossier")
class TestParameterTypes:
    def test_token_forms(self, client: httpx.Client) -> None:
        assert ids(client, "Patient", gender="female") == ["anna"]
        assert ids(
            client, "Patient", identifier="http://fhir.nl/fhir/NamingSystem/bsn|999911120"
        ) == ["anna"]
        assert ids(client, "Patient", identifier="999911120") == ["anna"]
        assert ids(client, "Patient", identifier="http://other|999911120") == []
        assert ids(client, "Observation", code="http://example.org/zrm|") == [
            f"zrm-{i}" for i in range(4)
        ]
        assert ids(client, "Observation", code="|financien") == []
        assert ids(client, "Observation", status="preliminary") == ["zrm-2"]
        assert ids(client, "Observation", **{"status:not": "final"}) == ["zrm-2"]
        assert ids(client, "Patient", active="true") == ["anna"]

    def test_token_text_and_of_type(self, client: httpx.Client) -> None:
        assert len(ids(client, "Observation", **{"code:text": "financien"})) == 4
        of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|NI|999911120"
        assert ids(client, "Patient", **{"identifier:of-type": of_type}) == ["anna"]

    def test_string_prefix_exact_contains_accents(self, client: httpx.Client) -> None:
        assert ids(client, "Patient", name="ann") == ["anna"]
        assert ids(client, "Patient", family="DE VR") == ["anna"]
        assert ids(client, "Patient", given="bert") == ["bert"]  # accent-insensitive
        assert ids(client, "Patient", **{"family:exact": "de vries"}) == []
        assert ids(client, "Patient", **{"family:exact": "de Vries"}) == ["anna"]
        assert ids(client, "Patient", **{"name:contains": "akk"}) == ["bert"]
        assert ids(client, "Patient", address="utrecht") == ["anna"]
        assert ids(client, "Patient", **{"address-postalcode": "3511"}) == ["anna"]

    def test_dates_with_prefixes_and_precision(self, client: httpx.Client) -> None:
        assert ids(client, "Observation", date="2026-03") == ["zrm-1"]
        assert ids(client, "Observation", date="2026") == ["zrm-0", "zrm-1", "zrm-2"]
        assert ids(client, "Observation", date="ge2026-03-15") == ["zrm-1", "zrm-2"]
        assert ids(client, "Observation", date="gt2026-03-15") == ["zrm-2"]
        assert ids(client, "Observation", date="lt2026-01-01") == ["zrm-3"]
        assert ids(client, "Observation", date="le2026-01-10") == ["zrm-0", "zrm-3"]
        assert ids(client, "Observation", date="sa2026-03-15") == ["zrm-2"]
        assert ids(client, "Observation", date="eb2026-01-01") == ["zrm-3"]
        assert ids(client, "Observation", date="ne2026") == ["zrm-3"]
        assert ids(client, "Observation", date="2026-01-10T08:00:00Z") == ["zrm-0"]
        assert ids(client, "Patient", birthdate="1962-05-01") == []
        assert ids(client, "Patient", birthdate="1962") == ["bert"]
        assert ids(client, "Patient", birthdate="ap1950-04-01") == ["anna"]

    def test_date_ranges_and_repeated_parameters_are_anded(self, client: httpx.Client) -> None:
        params = [("date", "ge2026-01-01"), ("date", "lt2026-04-01")]
        response = client.get("Observation", params=params).json()
        assert sorted(e["resource"]["id"] for e in response["entry"]) == ["zrm-0", "zrm-1"]

    def test_quantity_and_number(self, client: httpx.Client) -> None:
        assert ids(client, "Observation", **{"value-quantity": "4"}) == ["zrm-1"]
        assert ids(client, "Observation", **{"value-quantity": "ge4"}) == ["zrm-1", "zrm-2"]
        assert ids(
            client, "Observation", **{"value-quantity": "lt3|http://unitsofmeasure.org|1"}
        ) == ["zrm-3"]
        assert ids(client, "Observation", **{"value-quantity": "4|http://other|1"}) == []
        assert ids(client, "Observation", **{"value-quantity": "ap4.2"}) == ["zrm-1"]

    def test_reference_forms(self, client: httpx.Client, base: str) -> None:
        anna = ["zrm-0", "zrm-1", "zrm-2"]
        assert ids(client, "Observation", subject="Patient/anna") == anna
        assert ids(client, "Observation", subject=f"{base}/Patient/anna") == anna
        assert ids(client, "Observation", patient="anna") == anna
        assert ids(client, "Observation", **{"subject:Patient": "anna"}) == anna
        assert ids(client, "Observation", **{"subject:Group": "anna"}) == []
        assert ids(client, "Patient", organization="Organization/praktijk") == ["anna"]

    def test_or_within_a_parameter(self, client: httpx.Client) -> None:
        assert ids(client, "Patient", _id="anna,bert") == ["anna", "bert"]
        assert ids(client, "Patient", **{"_id:not": "anna"}) == ["bert"]
        assert ids(client, "Observation", status="preliminary,final", subject="Patient/bert") == [
            "zrm-3"
        ]

    def test_missing(self, client: httpx.Client) -> None:
        assert ids(client, "Patient", **{"organization:missing": "true"}) == ["bert"]
        assert ids(client, "Patient", **{"organization:missing": "false"}) == ["anna"]

    def test_last_updated(self, client: httpx.Client) -> None:
        assert len(ids(client, "Patient", _lastUpdated="gt2000-01-01")) == 2
        assert ids(client, "Patient", _lastUpdated="lt2000-01-01") == []


@pytest.mark.usefixtures("dossier")
class TestChainsAndHas:
    def test_forward_chain(self, client: httpx.Client) -> None:
        assert ids(client, "Observation", **{"subject:Patient.name": "bakker"}) == ["zrm-3"]
        assert ids(client, "Observation", **{"patient.gender": "female"}) == [
            "zrm-0",
            "zrm-1",
            "zrm-2",
        ]
        chained = "subject:Patient.organization.identifier"
        assert len(ids(client, "Observation", **{chained: "01234567"})) == 3

    def test_reverse_chain(self, client: httpx.Client) -> None:
        assert ids(client, "Patient", **{"_has:Observation:patient:status": "preliminary"}) == [
            "anna"
        ]
        assert ids(client, "Patient", **{"_has:Observation:subject:value-quantity": "2"}) == [
            "bert"
        ]
        assert ids(
            client,
            "Organization",
            **{"_has:Patient:organization:_has:Observation:patient:status": "final"},
        ) == ["praktijk"]


@pytest.mark.usefixtures("dossier")
class TestResultParameters:
    def test_paging_links_stay_correct(self, client: httpx.Client) -> None:
        seen: list[str] = []
        url: str | None = "Observation?_count=1&_sort=date"
        while url:
            bundle = client.get(url).json()
            assert bundle["total"] == 4
            seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
            links = {link["relation"]: link["url"] for link in bundle["link"]}
            url = links.get("next")
        assert seen == ["zrm-3", "zrm-0", "zrm-1", "zrm-2"]
        last = client.get("Observation", params={"_count": 1, "_offset": 3, "_sort": "date"}).json()
        relations = {link["relation"] for link in last["link"]}
        assert {"self", "previous", "first"} <= relations and "next" not in relations

    def test_sort(self, client: httpx.Client) -> None:
        def order(**params: Any) -> list[str]:
            bundle = client.get("Observation", params=params).json()
            return [e["resource"]["id"] for e in bundle["entry"]]

        assert order(_sort="-date") == ["zrm-2", "zrm-1", "zrm-0", "zrm-3"]
        assert order(_sort="value-quantity") == ["zrm-3", "zrm-0", "zrm-1", "zrm-2"]
        assert order(_sort="status,-_id") == ["zrm-3", "zrm-1", "zrm-0", "zrm-2"]

    def test_include_and_revinclude(self, client: httpx.Client) -> None:
        bundle = client.get(
            "Observation", params={"_id": "zrm-0", "_include": "Observation:subject"}
        ).json()
        modes = sorted((e["search"]["mode"], e["resource"]["id"]) for e in bundle["entry"])
        assert modes == [("include", "anna"), ("match", "zrm-0")]
        assert bundle["total"] == 1
        bundle = client.get(
            "Patient",
            params=[
                ("_id", "anna"),
                ("_revinclude", "Observation:subject"),
                ("_include", "Patient:organization"),
            ],
        ).json()
        included = sorted(
            e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"
        )
        assert included == ["praktijk", "zrm-0", "zrm-1", "zrm-2"]
        iterate = client.get(
            "Observation",
            params=[
                ("_id", "zrm-1"),
                ("_include", "Observation:subject"),
                ("_include:iterate", "Patient:organization"),
            ],
        ).json()
        assert {e["resource"]["id"] for e in iterate["entry"]} == {"zrm-1", "anna", "praktijk"}

    def test_summary_and_elements(self, client: httpx.Client) -> None:
        count = client.get("Observation", params={"_summary": "count"}).json()
        assert count["total"] == 4 and "entry" not in count
        summary = client.get("Patient", params={"_id": "anna", "_summary": "true"}).json()
        resource = summary["entry"][0]["resource"]
        assert "name" in resource and "address" in resource
        assert {"code": "SUBSETTED"}.items() <= resource["meta"]["tag"][0].items()
        elements = client.get("Patient", params={"_id": "anna", "_elements": "gender"}).json()
        assert set(elements["entry"][0]["resource"]) == {"resourceType", "id", "meta", "gender"}
        read = client.get("Patient/anna", params={"_elements": "birthDate"}).json()
        assert set(read) == {"resourceType", "id", "meta", "birthDate"}

    def test_total_none(self, client: httpx.Client) -> None:
        bundle = client.get("Observation", params={"_total": "none"}).json()
        assert "total" not in bundle and len(bundle["entry"]) == 4

    def test_unknown_parameter_is_a_warning_in_the_bundle(self, client: httpx.Client) -> None:
        bundle = client.get("Patient", params={"shoe-size": "44"}).json()
        outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
        assert outcome[0]["resource"]["issue"][0]["severity"] == "warning"

    def test_post_search(self, client: httpx.Client) -> None:
        response = client.post("Patient/_search", data={"gender": "male"})
        assert [e["resource"]["id"] for e in response.json()["entry"]] == ["bert"]

    def test_system_search(self, client: httpx.Client) -> None:
        assert ids(client, "", _id="anna,zrm-0") == ["anna", "zrm-0"]

    def test_deleted_resources_leave_the_results(self, client: httpx.Client) -> None:
        client.delete("Observation/zrm-0")
        assert ids(client, "Observation", subject="Patient/anna") == ["zrm-1", "zrm-2"]

    def test_update_reindexes(self, client: httpx.Client) -> None:
        patient = client.get("Patient/bert").json()
        patient["gender"] = "other"
        client.put("Patient/bert", json=patient, headers=JSON)
        assert ids(client, "Patient", gender="male") == []
        assert ids(client, "Patient", gender="other") == ["bert"]


class TestComposite:
    def test_component_code_value_quantity(self, client: httpx.Client) -> None:
        from tests.conftest import example

        put(client, example("Observation-blood-pressure"))
        systolic = "http://loinc.org|8480-6"
        assert ids(
            client, "Observation", **{"component-code-value-quantity": f"{systolic}$gt100"}
        ) == ["blood-pressure"]
        assert (
            ids(client, "Observation", **{"component-code-value-quantity": f"{systolic}$lt100"})
            == []
        )
        # the diastolic value must not pair with the systolic code
        assert (
            ids(client, "Observation", **{"component-code-value-quantity": f"{systolic}$60"}) == []
        )
        assert ids(
            client,
            "Observation",
            **{
                "component-code-value-quantity": "http://loinc.org|8462-4$60|http://unitsofmeasure.org|mm[Hg]"
            },
        ) == ["blood-pressure"]

    @pytest.mark.usefixtures("dossier")
    def test_code_value_quantity_and_date(self, client: httpx.Client) -> None:
        code = "http://example.org/zrm|financien"
        assert ids(client, "Observation", **{"code-value-quantity": f"{code}$ge4"}) == [
            "zrm-1",
            "zrm-2",
        ]
        assert (
            ids(client, "Observation", **{"code-value-quantity": "http://other|financien$ge4"})
            == []
        )
        assert (
            client.get("Observation", params={"code-value-quantity": "no-dollar"}).status_code
            == 400
        )


def test_a_resource_matching_twice_counts_once(client: httpx.Client) -> None:
    put(
        client,
        {
            "resourceType": "Observation",
            "id": "twice",
            "status": "final",
            "code": {
                "coding": [{"system": "http://a", "code": "x"}, {"system": "http://b", "code": "x"}]
            },
        },
    )
    for index in range(3):
        put(
            client,
            {
                "resourceType": "Observation",
                "id": f"other-{index}",
                "status": "final",
                "code": {"coding": [{"system": "http://a", "code": "x"}]},
            },
        )
    page = client.get("Observation", params={"code": "x", "_count": 2}).json()
    assert page["total"] == 4  # counted, not taken from the page
    assert len(page["entry"]) == 2
    seen = [e["resource"]["id"] for e in page["entry"]]
    second = client.get("Observation", params={"code": "x", "_count": 2, "_offset": 2}).json()
    seen += [e["resource"]["id"] for e in second["entry"]]
    assert sorted(seen) == ["other-0", "other-1", "other-2", "twice"]  # each once, in pages
    assert not any(link["relation"] == "next" for link in second["link"])


class TestLimits:
    """The same answer on SQLite and PostgreSQL: within the limits a search runs, beyond them
    it is a 400 before any SQL is built."""

    def test_the_most_a_search_may_ask_runs(self, client: httpx.Client) -> None:
        client.put(
            "Organization/o", json={"resourceType": "Organization", "id": "o", "name": "Zorg"}
        )
        client.put(
            "Patient/p",
            json={
                "resourceType": "Patient",
                "id": "p",
                "managingOrganization": {"reference": "Organization/o"},
            },
        )
        codes = ",".join(f"http://loinc.org|{n}" for n in range(100))
        queries = [
            f"Observation?code={codes}",
            "Observation?subject:Patient.organization.partof.name=x",
            "Patient?_has:Observation:subject:_has:Provenance:target:_has:AuditEvent:entity:type=x",
            "Patient?_has:Observation:subject:subject:Patient.organization.name=Zorg",
            "Observation?" + "&".join(f"code=x{n}" for n in range(40)),
        ]
        for query in queries:
            response = client.get(query)
            assert response.status_code == 200, (query[:80], response.text[:300])

    def test_beyond_the_limits_is_400_naming_the_parameter(self, client: httpx.Client) -> None:
        codes = ",".join(f"http://loinc.org|{n}" for n in range(101))
        has = "_has:Observation:subject:" * 4 + "code=x"
        queries = {
            f"Observation?code={codes}": "at most 100 values",
            "Observation?subject:Patient.organization.partof.partof.name=x": "at most 3 links",
            f"Patient?{has}": "_has nests at most 3",
            "Observation?" + "&".join(f"code=x{n}" for n in range(41)): "at most 40 parameters",
        }
        for query, says in queries.items():
            response = client.get(query)
            assert response.status_code == 400, query[:80]
            assert says in response.json()["issue"][0]["diagnostics"]


def test_system_search_takes_type_and_the_common_parameters(client: httpx.Client) -> None:
    tag = {"system": "http://example.org/tags", "code": "proef"}
    resources = [
        {"resourceType": "Patient", "id": "t1", "meta": {"tag": [tag]}},
        {"resourceType": "Patient", "id": "t2"},
        {
            "resourceType": "Organization",
            "id": "t3",
            "meta": {"tag": [tag], "profile": ["http://example.org/sd"]},
        },
        {"resourceType": "Practitioner", "id": "t4"},
    ]
    for resource in resources:
        client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)

    def ids(query: str) -> list[str]:
        response = client.get(f"?{query}")
        assert response.status_code == 200, (query, response.text[:300])
        assert not any(
            e.get("search", {}).get("mode") == "outcome" for e in response.json().get("entry", [])
        ), query  # nothing ignored as unknown
        return sorted(e["resource"]["id"] for e in response.json().get("entry", []))

    assert ids("_tag=http://example.org/tags|proef") == ["t1", "t3"]
    assert ids("_tag=proef&_type=Patient") == ["t1"]
    assert ids("_type=Patient,Practitioner") == ["t1", "t2", "t4"]
    assert ids("_profile=http://example.org/sd") == ["t3"]
    assert ids("_tag:not=proef&_type=Patient") == ["t2"]
    assert ids("_id=t2,t4&_type=Practitioner") == ["t4"]
    assert client.get("?_type=Nonsense").status_code == 400
    assert client.get("?_tag:missing=true").status_code in (400, 501)


def test_a_search_on_a_value_repeated_within_a_resource_finds_it_once(
    client: httpx.Client,
) -> None:
    codes = [{"coding": [{"system": "http://example.org/c", "code": "same"}]}] * 3
    resource = {"resourceType": "Observation", "id": "repeats", "status": "final", "code": codes[0]}
    resource["category"] = codes
    assert client.put("Observation/repeats", json=resource).status_code in (200, 201)
    found = client.get("Observation", params={"category": "http://example.org/c|same"}).json()
    assert found["total"] == 1 and len(found["entry"]) == 1


@pytest.mark.parametrize("count", [1, 2, 5, 50])
def test_every_page_has_the_exact_total_and_its_own_slice(
    services: Services, client: httpx.Client, count: int
) -> None:
    """Keys read beyond a page give the total of a search that fits in a few pages, a
    count gives it otherwise (ADR 0022): either way, at every offset, the same total, the
    page's own resources, and a next link exactly when more follow."""
    matches = 23
    observations = [
        {
            "resourceType": "Observation",
            "id": f"o{n}",
            "status": "final",
            "code": {"text": "zrm"},
            "subject": {"reference": "Patient/p"},
        }
        for n in range(matches)
    ]
    other = {**observations[0], "id": "elsewhere", "subject": {"reference": "Patient/q"}}
    load(services, [*observations, other], "test: pages of one dossier")
    every = sorted(o["id"] for o in observations)
    for offset in [*range(0, matches + 2, count), matches - 1, matches + 5]:
        bundle = client.get(
            "Observation",
            params={"subject": "Patient/p", "_count": count, "_offset": offset, "_sort": "_id"},
        ).json()
        assert bundle["total"] == matches, (count, offset)
        assert [e["resource"]["id"] for e in bundle.get("entry", [])] == every[
            offset : offset + count
        ]
        relations = {link["relation"] for link in bundle["link"]}
        assert ("next" in relations) == (offset + count < matches), (count, offset)
