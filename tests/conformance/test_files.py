"""``eigendossier conformance check``: files an integrator produced, judged offline."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pathlib
from importlib import resources

import pytest

from adapters.declarations.aw319 import aw319_text
from conformance.kit.files import check_file
from mappings.care.demo import demo_dossier
from tests.adapters.declarations.test_aw319 import _bericht, _client, _prestatie
from tests.conftest import run_cli

SAMPLE = resources.files("mappings.nl").joinpath("data", "iwmo", "sample-WMO323.xml").read_bytes()
ZRM = next(r for r in demo_dossier(dt.date(2026, 12, 1)) if r["id"] == "anna-zrm-1-financien")


def _write(folder: pathlib.Path, name: str, data: bytes | str) -> pathlib.Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _messages(path: pathlib.Path) -> str:
    return " | ".join(f"{f.where}: {f.message}" for f in check_file(path)[1])


# -- FHIR ---------------------------------------------------------------------------------


def test_a_good_resource_and_bundle_pass(tmp_path: pathlib.Path) -> None:
    assert check_file(_write(tmp_path, "zrm.json", json.dumps(ZRM))) == ("FHIR JSON", [])
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": ZRM}]}
    assert check_file(_write(tmp_path, "b.json", json.dumps(bundle)))[1] == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.update(valueInteger=9), "Observation.valueInteger"),
        (lambda r: r.update(status="bogus"), "Observation.status"),
        (lambda r: r.pop("code"), "'code' is a required property"),
        (lambda r: r.update(valueInteger="4"), "Observation.valueInteger"),
    ],
)
def test_a_bad_resource_is_named_where_it_is_bad(
    tmp_path: pathlib.Path, change: object, says: str
) -> None:
    resource = copy.deepcopy(ZRM)
    change(resource)  # type: ignore[operator]
    assert says in _messages(_write(tmp_path, "bad.json", json.dumps(resource)))


def test_a_bad_entry_of_a_bundle_is_named(tmp_path: pathlib.Path) -> None:
    bad = {**ZRM, "valueInteger": 9}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": ZRM}, {"resource": bad}],
    }
    said = _messages(_write(tmp_path, "b.json", json.dumps(bundle)))
    assert "Bundle.entry[1].resource Observation.valueInteger" in said
    assert "entry[0]" not in said


def test_what_is_not_json_or_any_known_format(tmp_path: pathlib.Path) -> None:
    assert "not JSON" in _messages(_write(tmp_path, "x.json", "{not json"))
    assert check_file(_write(tmp_path, "x.txt", "hello"))[0] == "unknown"
    assert check_file(tmp_path / "missing.json")[0] == "unreadable"


# -- WMO323 -------------------------------------------------------------------------------


def test_the_official_sample_passes(tmp_path: pathlib.Path) -> None:
    assert check_file(_write(tmp_path, "wmo323.xml", SAMPLE)) == ("WMO323", [])


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (b"<iwmo:TotaalBedrag>58000", b"<iwmo:TotaalBedrag>58001", "not the net sum"),
        (b"<iwmo:Einddatum>2023-04-30</iwmo:Einddatum>\r\n\t\t</wmo323:DeclaratiePeriode>",
         b"<iwmo:Einddatum>2023-04-29</iwmo:Einddatum>\r\n\t\t</wmo323:DeclaratiePeriode>",
         "one calendar month"),
        (b"<wmo323:Bsn>999900006", b"<wmo323:Bsn>999900007", "eleven test"),
        (b"RN002", b"RN001", "appears once"),
        (b"<wmo323:BerichtCode>484", b"<wmo323:BerichtCode>48x", "line"),
        (b"</wmo323:Bericht>", b"", "not well-formed"),
    ],
)  # fmt: skip
def test_a_broken_wmo323_is_refused_with_the_rule(
    tmp_path: pathlib.Path, old: bytes, new: bytes, says: str
) -> None:
    assert old in SAMPLE
    said = _messages(_write(tmp_path, "wmo323.xml", SAMPLE.replace(old, new, 1)))
    assert says in said


def test_a_doctype_with_an_entity_is_refused_not_expanded_and_no_crash(
    tmp_path: pathlib.Path,
) -> None:
    head, _, rest = SAMPLE.partition(b"\n")
    entity = b'<!DOCTYPE wmo323:Bericht [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
    hostile = head + b"\n" + entity + b"\n" + rest.replace(b">DN001<", b">&e;<", 1)
    kind, findings = check_file(_write(tmp_path, "evil.xml", hostile))
    assert kind == "WMO323"
    assert [f.message for f in findings] == ["XML with a DOCTYPE is refused"]


# -- AW319 ----------------------------------------------------------------------------------


def test_a_written_aw319_passes(tmp_path: pathlib.Path) -> None:
    text = aw319_text(_bericht(_client(_prestatie("A"), _prestatie("B"))))
    assert check_file(_write(tmp_path, "aw319.txt", text)) == ("AW319", [])


def test_a_broken_aw319_is_refused_with_the_rule(tmp_path: pathlib.Path) -> None:
    lines = aw319_text(_bericht(_client(_prestatie("A"), _prestatie("B")))).split("\r\n")
    short = "\r\n".join([lines[0][:-1], *lines[1:]])
    assert "309 positions" in _messages(_write(tmp_path, "a.txt", short))
    closing = lines[-2]
    wrong_count = closing[:14] + "000009" + closing[20:]  # 9904: the number of 04 records
    said = _messages(_write(tmp_path, "b.txt", "\r\n".join([*lines[:-2], wrong_count, ""])))
    assert "99 9904" in said
    no_close = "\r\n".join([*lines[:-2], ""])
    assert "one 99 record last" in _messages(_write(tmp_path, "c.txt", no_close))


# -- the command ----------------------------------------------------------------------------


def test_the_command_checks_several_files_and_exits_by_them(tmp_path: pathlib.Path) -> None:
    good = _write(tmp_path, "zrm.json", json.dumps(ZRM))
    bad = _write(tmp_path, "bad.json", json.dumps({**ZRM, "valueInteger": 9}))
    sample = _write(tmp_path, "wmo323.xml", SAMPLE)
    done = run_cli(
        "conformance", "check", str(good), str(sample), database="sqlite:///x.db", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout and "(WMO323)" in done.stdout
    failed = run_cli(
        "conformance", "check", str(good), str(bad), database="sqlite:///x.db", cwd=tmp_path
    )
    assert failed.returncode == 1
    assert "FAIL" in failed.stdout and "Observation.valueInteger" in failed.stdout
