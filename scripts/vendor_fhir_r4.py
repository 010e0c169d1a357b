#!/usr/bin/env python3
"""Regenerate the vendored FHIR R4 (4.0.1) definitions and examples.

Source: the npm package ``hl7.fhir.r4.examples`` 4.0.1 (HL7, CC0). The script runs
``npm pack`` itself unless ``--package DIR`` points at an unpacked ``package/`` folder.

What it writes (all derived data, never edited by hand):

- ``mappings/core/data/r4-structure.json``: the element tree of every resource type (any
  may be contained) and of every data type: cardinality, types,
  reference targets and required bindings, in definition order (the XML codec needs it).
- ``mappings/core/data/r4-valuesets.json``: the code lists of the value sets that required
  bindings point at, where the value set can be enumerated from the package.
- ``mappings/core/data/r4-search-parameters.json``: the SearchParameters of each served type,
  with the expression reduced to that type's own branch.
- ``mappings/core/data/r4-patient-compartment.json``: the patient compartment definition.
- ``tests/data/r4-examples/``: the official examples of the served types (for the
  definitional types, whose "examples" are the whole specification, a sorted sample);
- ``tests/data/r4-definitional-examples.jsonl.gz``: all of the definitional ones (every
  StructureDefinition, CodeSystem, ValueSet, SearchParameter and ConceptMap of the spec),
  one resource per line.

The list of served types is ``mappings/core/data/resource-types.json``.

Usage: python scripts/vendor_fhir_r4.py [--package DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import re
import subprocess
import tarfile
import tempfile
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "mappings" / "core" / "data"
EXAMPLES = ROOT / "tests" / "data" / "r4-examples"
PACKAGE = "hl7.fhir.r4.examples@4.0.1"
DEFINITIONAL = {"StructureDefinition", "CodeSystem", "ValueSet", "SearchParameter", "ConceptMap"}
SAMPLE_DEFINITIONAL = 12
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"

Json = dict[str, Any]


def load_package(directory: pathlib.Path | None) -> pathlib.Path:
    if directory is not None:
        return directory
    work = pathlib.Path(tempfile.mkdtemp(prefix="fhir-r4-"))
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=work, check=True)
    archive = next(work.glob("*.tgz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return work / "package"


def read(package: pathlib.Path, name: str) -> Json:
    data: Json = json.loads((package / name).read_text(encoding="utf-8"))
    return data


def type_code(element_type: Json) -> str:
    for ext in element_type.get("extension", []):
        if ext["url"] == FHIR_TYPE_EXT:
            return str(ext["valueUrl"])
    code = str(element_type["code"])
    return "string" if code.startswith("http://hl7.org/fhirpath/System.") else code


def element_entry(element: Json) -> Json:
    entry: Json = {"min": element.get("min", 0), "max": element.get("max", "*")}
    if element.get("isSummary"):
        entry["summary"] = True
    if "contentReference" in element:
        entry["ref"] = element["contentReference"].lstrip("#")
        return entry
    types = [type_code(t) for t in element.get("type", [])]
    entry["types"] = types
    targets = sorted(
        {p.rsplit("/", 1)[-1] for t in element.get("type", []) for p in t.get("targetProfile", [])}
    )
    if targets:
        entry["targets"] = targets
    binding = element.get("binding", {})
    if binding.get("strength") == "required" and "valueSet" in binding:
        entry["binding"] = binding["valueSet"].split("|")[0]
    return entry


def structure_tree(definition: Json) -> Json:
    """Nest the snapshot's flat element list into a tree keyed by JSON name."""
    root_path = definition["snapshot"]["element"][0]["path"]
    nodes: dict[str, Json] = {root_path: {"children": {}}}
    for element in definition["snapshot"]["element"][1:]:
        path = element["path"]
        parent, _, name = path.rpartition(".")
        entry = element_entry(element)
        if name.endswith("[x]"):
            name = name[:-3]
            entry["choice"] = True
        if entry.get("types") in (["BackboneElement"], ["Element"]):
            entry["children"] = {}
        nodes[parent]["children"][name] = entry
        nodes[path] = entry
    return nodes[root_path]


def prune_backbones(tree: Json, complex_types: set[str]) -> None:
    """Elements typed Element/BackboneElement without children are plain data types."""
    for entry in tree.get("children", {}).values():
        if "children" in entry and not entry["children"]:
            del entry["children"]
        if "children" in entry:
            prune_backbones(entry, complex_types)


def primitive_info(definition: Json) -> Json:
    for element in definition["snapshot"]["element"]:
        if element["path"].endswith(".value"):
            for t in element.get("type", []):
                for ext in t.get("extension", []):
                    if ext["url"] == REGEX_EXT:
                        return {"regex": ext["valueString"]}
    return {}


def build_structure(package: pathlib.Path, served: list[str]) -> Json:
    primitives: Json = {}
    types: Json = {}
    resources: Json = {}
    for path in sorted(package.glob("StructureDefinition-*.json")):
        definition = read(package, path.name)
        name = definition["type"]
        is_base = name in ("Element", "BackboneElement", "Resource", "DomainResource")
        if "snapshot" not in definition or not (
            definition.get("derivation") == "specialization" or is_base
        ):
            continue
        if definition["kind"] == "primitive-type":
            primitives[name] = primitive_info(definition)
        elif definition["kind"] == "complex-type":
            tree = structure_tree(definition)
            prune_backbones(tree, set())
            types[name] = tree
        elif definition["kind"] == "resource":
            tree = structure_tree(definition)
            prune_backbones(tree, set())
            resources[name] = tree
    missing = sorted(set(served) - set(resources))
    if missing:
        raise SystemExit(f"no StructureDefinition for: {missing}")
    return {
        "fhirVersion": "4.0.1",
        "primitives": primitives,
        "types": types,
        "resources": resources,
    }


def required_bindings(structure: Json) -> set[str]:
    found: set[str] = set()

    def walk(tree: Json) -> None:
        for entry in tree.get("children", {}).values():
            if "binding" in entry:
                found.add(entry["binding"])
            walk(entry)

    for tree in [*structure["types"].values(), *structure["resources"].values()]:
        walk(tree)
    return found


def concept_codes(concepts: list[Json]) -> list[str]:
    codes: list[str] = []
    for concept in concepts:
        codes.append(concept["code"])
        codes.extend(concept_codes(concept.get("concept", [])))
    return codes


def expand(url: str, valuesets: dict[str, Json], codesystems: dict[str, Json]) -> Json | None:
    """Expand a value set into {system: [codes]}; None when the package cannot enumerate it."""
    valueset = valuesets.get(url)
    if valueset is None or "compose" not in valueset:
        return None
    result: dict[str, set[str]] = {}
    for include in valueset["compose"].get("include", []):
        for nested in include.get("valueSet", []):
            sub = expand(nested.split("|")[0], valuesets, codesystems)
            if sub is None:
                return None
            for system, codes in sub.items():
                result.setdefault(system, set()).update(codes)
        system = include.get("system")
        if system is None:
            continue
        if "filter" in include:
            return None
        if "concept" in include:
            codes = {c["code"] for c in include["concept"]}
        else:
            codesystem = codesystems.get(system)
            if codesystem is None or codesystem.get("content") != "complete":
                return None
            codes = set(concept_codes(codesystem.get("concept", [])))
        result.setdefault(system, set()).update(codes)
    for exclude in valueset["compose"].get("exclude", []):
        excluded = {c["code"] for c in exclude.get("concept", [])}
        if exclude.get("system") in result:
            result[exclude["system"]] -= excluded
    return {system: sorted(codes) for system, codes in sorted(result.items())}


def build_valuesets(package: pathlib.Path, urls: set[str]) -> Json:
    valuesets = {}
    codesystems = {}
    for path in package.glob("ValueSet-*.json"):
        resource = read(package, path.name)
        valuesets[resource["url"]] = resource
    for path in package.glob("CodeSystem-*.json"):
        resource = read(package, path.name)
        codesystems[resource["url"]] = resource
    out: Json = {}
    for url in sorted(urls):
        expansion = expand(url, valuesets, codesystems)
        if expansion is not None:
            out[url] = expansion
    return out


def split_union(expression: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in expression:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "|" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def own_branches(expression: str, resource_type: str, base: str) -> str:
    pattern = re.compile(rf"^\(?\s*{re.escape(base)}(\.|\s*$)")
    branches = [b for b in split_union(expression) if pattern.match(b)]
    if base != resource_type:
        branches = [re.sub(rf"\b{re.escape(base)}\.", f"{resource_type}.", b) for b in branches]
    return " | ".join(branches)


def build_search_parameters(package: pathlib.Path, served: list[str]) -> Json:
    out: Json = {t: [] for t in served}
    for path in sorted(package.glob("SearchParameter-*.json")):
        param = read(package, path.name)
        expression = param.get("expression")
        if not expression:
            continue
        for base in param["base"]:
            targets = served if base in ("Resource", "DomainResource") else [base]
            for resource_type in targets:
                if resource_type not in out:
                    continue
                own = own_branches(expression, resource_type, base)
                if not own:
                    continue
                entry: Json = {
                    "code": param["code"],
                    "type": param["type"],
                    "expression": own,
                    "url": param["url"],
                }
                for key in ("target", "comparator", "modifier"):
                    if key in param:
                        entry[key] = param[key]
                if "component" in param:
                    entry["component"] = [
                        {"definition": c["definition"], "expression": c["expression"]}
                        for c in param["component"]
                    ]
                out[resource_type].append(entry)
    for resource_type in out:
        out[resource_type].sort(key=lambda p: p["code"])
    return out


def vendor_examples(package: pathlib.Path, served: list[str]) -> int:
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for old in EXAMPLES.glob("*.json"):
        old.unlink()
    count = 0
    for resource_type in served:
        files = sorted(package.glob(f"{resource_type}-*.json"))
        if resource_type in DEFINITIONAL:
            files = files[:SAMPLE_DEFINITIONAL]
        for path in files:
            resource = read(package, path.name)
            if resource.get("resourceType") != resource_type:
                continue
            (EXAMPLES / path.name).write_text(json.dumps(resource, ensure_ascii=False, indent=1))
            count += 1
    return count


def vendor_definitional(package: pathlib.Path, served: list[str]) -> int:
    count = 0
    target = EXAMPLES.parent / "r4-definitional-examples.jsonl.gz"
    with gzip.GzipFile(target, "wb", compresslevel=9, mtime=0) as out:
        for resource_type in sorted(DEFINITIONAL & set(served)):
            for path in sorted(package.glob(f"{resource_type}-*.json")):
                resource = read(package, path.name)
                if resource.get("resourceType") == resource_type:
                    out.write(
                        json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
                        + b"\n"
                    )
                    count += 1
    return count


def write(path: pathlib.Path, data: Json) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", type=pathlib.Path, help="an unpacked package/ folder")
    args = parser.parse_args()
    package = load_package(args.package)
    served = json.loads((DATA / "resource-types.json").read_text())["resourceTypes"]
    structure = build_structure(package, served)
    write(DATA / "r4-structure.json", structure)
    write(DATA / "r4-valuesets.json", build_valuesets(package, required_bindings(structure)))
    write(DATA / "r4-search-parameters.json", build_search_parameters(package, served))
    compartment = read(package, "CompartmentDefinition-patient.json")
    members = {
        r["code"]: r.get("param", []) for r in compartment["resource"] if r["code"] in served
    }
    write(DATA / "r4-patient-compartment.json", {"url": compartment["url"], "resources": members})
    print(f"examples: {vendor_examples(package, served)}")
    print(f"definitional examples: {vendor_definitional(package, served)}")


if __name__ == "__main__":
    main()
