"""The Vektis AW319 writer: the layout table is whole, every file it writes reads back
against the layout and the cross-record rules, and the 99 record holds the net total."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.declarations.aw319 import (
    Aw319Bericht,
    Aw319Prestatie,
    Verzekerde,
    aw319_faults,
    aw319_text,
    decode,
    encode,
)
from mappings.nl.aw319_layout import LAYOUT, RECORD_LENGTH

DAY = dt.date(2026, 4, 1)


def _prestatie(reference: str = "REF1", **changes: object) -> Aw319Prestatie:
    line = Aw319Prestatie(DAY, dt.date(2026, 4, 30), "1003", 120, 1, "12345678", 95, reference)
    return dataclasses.replace(line, **changes)  # type: ignore[arg-type]


def _client(*lines: Aw319Prestatie, bsn: str = "999911120") -> Verzekerde:
    return Verzekerde(
        bsn, "3311", dt.date(1950, 4, 3), 2, "Jansen", "A", lines or (_prestatie(),), "de"
    )


def _bericht(*clients: Verzekerde) -> Aw319Bericht:
    return Aw319Bericht(
        "3311", "12345678", DAY, dt.date(2026, 4, 30), "F2026040001", dt.date(2026, 5, 2),
        clients or (_client(),),
    )  # fmt: skip


@pytest.mark.parametrize("record", sorted(LAYOUT))
def test_each_record_layout_is_310_contiguous_positions(record: str) -> None:
    fields = LAYOUT[record]
    assert fields[0].start == 1 and fields[-1].end == RECORD_LENGTH
    for before, after in itertools.pairwise(fields):
        assert after.start == before.end + 1, (before.code, after.code)
    assert all(f.kind in ("N", "AN") for f in fields)


def test_a_file_reads_back_with_its_totals() -> None:
    text = aw319_text(
        _bericht(
            _client(_prestatie("A"), _prestatie("B", aantal=60)),
            _client(_prestatie("C", vorige_referentie="OLD", aantal=30), bsn="999900006"),
        )
    )
    assert aw319_faults(text) == []
    lines = text.split("\r\n")
    assert lines[-1] == "" and all(len(line) == 310 for line in lines[:-1])
    kinds = [line[:2] for line in lines[:-1]]
    assert kinds == ["01", "02", "04", "04", "02", "04", "99"]
    _, closing = decode(lines[-2])
    assert int(closing["9902"]) == 2 and int(closing["9904"]) == 3
    assert int(closing["9906"]) == 5
    assert int(closing["9907"]) == 95 * (120 + 60 - 30) and closing["9908"] == "D"
    _, first = decode(lines[0])
    assert first["0102"] == "428" and first["0119"] == "EUR"
    _, line = decode(lines[2])
    assert line["0417"] == "1003 " and line["0425"] == "00000095"
    assert line["0403"] == "999911120" and line["0431"] == "A".ljust(20)
    _, client = decode(lines[1])
    assert client["0210"] == "Jansen".ljust(25) and client["0211"] == "de".ljust(10)


def test_a_field_too_long_or_not_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="0417"):
        encode("04", {"0417": "TOOLONG"})
    with pytest.raises(ValueError, match="0418"):
        encode("04", {"0418": "12a"})
    with pytest.raises(ValueError, match="0418"):
        encode("04", {"0418": -5})


def test_tampered_files_are_caught() -> None:
    text = aw319_text(_bericht())
    lines = text.split("\r\n")
    wrong_total = lines[-2][:33] + "00000000001" + lines[-2][44:]
    checks = {
        "\r\n".join([*lines[:-2], wrong_total, ""]): "9907",
        "\r\n".join([lines[0], lines[2], lines[1], *lines[3:]]): "ORDER",
        text.replace(lines[2], lines[2][:20] + "X" + lines[2][21:]): "0403",
        text.replace(lines[1], lines[1][:300]): "LENGTH",
        "\r\n".join([lines[0], *lines[2:]]): "ORDER",
    }
    for tampered, rule in checks.items():
        assert rule in {f.rule for f in aw319_faults(tampered)}, rule


prestaties = st.builds(
    lambda i, aantal, tarief, credit: _prestatie(
        f"R{i}", aantal=aantal, tarief=tarief, vorige_referentie=f"O{i}" if credit else None
    ),
    st.integers(0, 10**9),
    st.integers(0, 9999),
    st.integers(0, 9999),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(prestaties, min_size=1, max_size=5), min_size=1, max_size=5))
def test_any_visits_give_a_file_that_reads_back_and_totals(
    per_client: list[list[Aw319Prestatie]],
) -> None:
    clients = tuple(_client(*lines) for lines in per_client)
    text = aw319_text(_bericht(*clients))
    assert aw319_faults(text) == []
    net = sum(p.bedrag if p.debet else -p.bedrag for lines in per_client for p in lines)
    _, closing = decode(text.split("\r\n")[-2])
    assert int(closing["9907"]) == abs(net)
    assert closing["9908"] == ("D" if net >= 0 else "C")
    text.encode("iso-8859-1")  # one byte per character
