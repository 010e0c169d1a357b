"""All 4,513 definitional resources of the R4 specification (StructureDefinition,
CodeSystem, ValueSet, SearchParameter, ConceptMap): valid, through XML, stored, read back."""

from __future__ import annotations

import gzip
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import httpx

from mappings.core.definitions import load_definitions
from mappings.core.validate import Validator
from mappings.core.xml import XmlCodec
from tests.conftest import canonical

ALL = pathlib.Path(__file__).parent.parent / "data" / "r4-definitional-examples.jsonl.gz"
JSON = {"Content-Type": "application/fhir+json"}
# Ten official SearchParameters lack the required `base` (1..*), and one has an id of 67
# characters (at most 64): a correct server refuses them, naming the fault.
KNOWN_INVALID = {
    f"SearchParameter/{kind.lower()}-extensions-{kind}-{n}": "SearchParameter.base"
    for kind in ("CodeSystem", "ValueSet")
    for n in ("author", "effective", "end", "keyword", "workflow")
} | {"SearchParameter/questionnaireresponse-extensions-QuestionnaireResponse-item-subject": "id"}


def resources(*, valid: bool = True) -> Iterator[dict[str, Any]]:
    """The valid ones (default), or the known invalid ones."""
    with gzip.open(ALL, "rt", encoding="utf-8") as lines:
        for line in lines:
            resource = json.loads(line)
            name = f"{resource['resourceType']}/{resource['id']}"
            if (name in KNOWN_INVALID) != valid:
                yield resource


def test_every_definitional_resource_is_valid_and_round_trips_xml() -> None:
    validator, codec = Validator(load_definitions()), XmlCodec(load_definitions())
    count = 0
    for resource in resources():
        name = f"{resource['resourceType']}/{resource['id']}"
        assert validator.validate(resource) == [], name
        assert canonical(codec.from_xml(codec.to_xml(resource))) == canonical(resource), name
        count += 1
    assert count == 4513 - len(KNOWN_INVALID)


def test_the_known_invalid_ones_are_refused_naming_base(client: httpx.Client) -> None:
    refused = 0
    for resource in resources(valid=False):
        url = f"{resource['resourceType']}/{resource['id']}"
        response = client.put(url, json=resource, headers=JSON)
        assert response.status_code == 400, url
        assert response.json()["issue"][0]["expression"] == [KNOWN_INVALID[url]]
        refused += 1
    assert refused == len(KNOWN_INVALID) == 11


def test_every_definitional_resource_is_stored_and_read_back_equal(client: httpx.Client) -> None:
    batch: list[dict[str, Any]] = []
    stored: list[dict[str, Any]] = []

    def send() -> None:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in batch
            ],
        }
        response = client.post("", json=bundle, headers={**JSON, "Prefer": "return=minimal"})
        assert response.status_code == 200, response.text[:500]
        stored.extend(batch)
        batch.clear()

    size = 0
    for resource in resources():
        length = len(json.dumps(resource))
        if batch and size + length > 3_000_000:  # the test server's body limit is 4 MiB
            send()
            size = 0
        batch.append(resource)
        size += length
    send()
    for resource in stored:
        read = client.get(f"{resource['resourceType']}/{resource['id']}").json()
        read.pop("meta")
        expected = {k: v for k, v in resource.items() if k != "meta"}
        assert read == expected, f"{resource['resourceType']}/{resource['id']}"
    expected_count = sum(1 for r in stored if r["resourceType"] == "SearchParameter")
    counted = client.get("SearchParameter", params={"_summary": "count"}).json()["total"]
    assert counted == expected_count
