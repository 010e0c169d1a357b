"""Is this valid FHIR R4? Asked of two parsers that are not the gateway's own validator.

- HL7's R4 JSON schema (``conformance/data/fhir.schema.json.gz``, vendored by
  ``scripts/vendor_fhir_schema.py``): structure, types, and the codes of required bindings
  that the schema enumerates (``Observation.status``).
- ``fhir.resources`` (its R4B models, the same as R4 for the types we serve): structure and
  cardinality, parsed into typed models. It does not check required bindings; the schema does.

A kit that judged with the server's own validator would pass the server's own bugs.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft6Validator
from pydantic import ValidationError

__all__ = ["problems"]


@functools.cache
def _definitions() -> dict[str, Any]:
    data = resources.files("conformance").joinpath("data/fhir.schema.json.gz").read_bytes()
    schema: dict[str, Any] = json.loads(gzip.decompress(data))
    return schema


@functools.cache
def _validator(resource_type: str) -> Draft6Validator | None:
    schema = _definitions()
    if resource_type not in schema["definitions"]:
        return None
    return Draft6Validator(
        {"$ref": f"#/definitions/{resource_type}", "definitions": schema["definitions"]}
    )


def _path(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def problems(resource: Any) -> list[str]:
    """What is wrong with ``resource`` as R4 JSON (empty: nothing), each naming its path."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return ["not a FHIR resource (no resourceType)"]
    kind = resource["resourceType"]
    validator = _validator(kind)
    if validator is None:
        return [f"{kind} is not an R4 resource type"]
    found = [
        f"{kind}{_path(e.absolute_path)}: {e.message[:160]}"
        for e in sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path))
    ]
    try:
        model = get_fhir_model_class(kind)
        model.model_validate(resource)
    except KeyError:
        found.append(f"{kind} is not known to fhir.resources")
    except ValidationError as error:
        for item in error.errors()[:5]:
            where = ".".join(str(p) for p in item.get("loc", ()))
            found.append(f"{kind}.{where}: {item.get('msg', 'invalid')} (fhir.resources)")
    return found
