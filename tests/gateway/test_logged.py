"""Access-log entries packed for the log against a dictionary of their vocabulary (ADR 0053)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from importlib import resources
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.audit import Access, audit_event
from consent.context import AccessContext, Kind
from consent.scopes import parse_scopes
from gateway.store import logged
from gateway.store.logged import VERSION, pack, unpack, unpacked_size

#: the released dictionaries, by version: an entry written with one is read with it, so a
#: released dictionary is never changed (a new one is a new version)
RELEASED = {1: "a75e510c287cd038508055477a96cbeaef17f42792367a981a91699eb2eb2de9"}

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@pytest.mark.parametrize("version", sorted(RELEASED))
def test_a_released_dictionary_never_changes(version: int) -> None:
    data = resources.files(logged.__package__).joinpath("data", f"log-dictionary-{version}.txt")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert digest == RELEASED[version], (
        "entries in logs are read with this dictionary: write a new version with "
        "scripts/make_log_dictionary.py instead"
    )
    assert VERSION in RELEASED


@given(st.dictionaries(st.text(), _json, max_size=8))
def test_an_entry_comes_back_as_the_json_it_was(event: dict[str, Any]) -> None:
    packed = pack(event)
    assert packed[0] == VERSION
    assert unpack(packed) == orjson.dumps(event)
    assert unpack(memoryview(packed)) == orjson.dumps(event)  # as a driver may hand it back
    assert unpacked_size(packed) == len(orjson.dumps(event))


def test_an_entry_written_whole_is_read_as_it_is() -> None:
    """Entries logged before entries were packed, or by another tool, are JSON."""
    for whole in (b"{}", b'{"resourceType":"AuditEvent","id":"a"}', b""):
        assert unpack(whole) == whole
        assert unpacked_size(whole) == len(whole)


def test_an_entry_of_no_known_form_is_refused() -> None:
    good = pack({"resourceType": "AuditEvent"})
    with pytest.raises(ValueError, match="unknown version"):
        unpack(bytes((200,)) + good[1:])
    with pytest.raises(ValueError, match="does not decompress"):
        unpack(good[:1] + b"\x00" * 12)
    with pytest.raises(ValueError, match="does not decompress"):
        unpack(good[:-3])  # cut short
    with pytest.raises(ValueError, match="not a frame"):
        unpacked_size(good[:1] + b"\x00" * 12)  # as the indexer sizes its batch


def _backend(network: str) -> AccessContext:
    scopes, _ = parse_scopes("system/*.rs")
    return AccessContext(
        kind=Kind.SYSTEM,
        client_id="7c0ffee0d15ea5e0b16b00b5a11ce000",
        scopes=scopes,
        subject="7c0ffee0d15ea5e0b16b00b5a11ce000",
        token_id="t1",
        organization_identifier="http://fhir.nl/fhir/NamingSystem/agb|99887766",
        purpose="TREAT",
        network_address=network,
    )


def test_a_read_entry_of_another_deployment_takes_an_eighth_of_its_json() -> None:
    """The dictionary's samples name another base, client and organisation than this
    deployment's: its codes, systems and displays are what an entry shares with them."""
    at = dt.datetime(2026, 12, 7, 16, 30, 1, 250000, tzinfo=dt.UTC)
    access = Access(
        "read", "0", at, "p-1234", ["Observation/o-98765"], consents=["Consent/grant-p-1234"]
    )
    event = audit_event(_backend("10.1.2.3"), access, "https://zorg.gemeente.example/fhir")
    event["id"] = "01a25135-e137-7c53-9bba-04578095da84"
    whole = orjson.dumps(event)
    packed = pack(event)
    assert len(packed) * 8 < len(whole), (len(packed), len(whole))
    assert unpack(packed) == whole


def test_threads_pack_and_unpack_at_once() -> None:
    """The gateway packs on its loop and on pool threads, the indexer unpacks on its own:
    each thread has its own codecs."""
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            start.wait()
            for k in range(300):
                event = {"resourceType": "AuditEvent", "id": f"{n}-{k}", "n": [n] * (k % 7)}
                assert unpack(pack(event)) == orjson.dumps(event)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
