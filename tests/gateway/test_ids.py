"""Server-assigned ids: random ones for resources, time-ordered ones for the access log's
entries (ADR 0036)."""

from __future__ import annotations

import re
import time
import uuid

from gateway.interactions.model import IdFactory

#: FHIR's id datatype
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def test_an_ordered_id_is_a_version_7_uuid_and_a_fhir_id() -> None:
    made = IdFactory().ordered()
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert _FHIR_ID.fullmatch(made)


def test_an_ordered_id_carries_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(IdFactory().ordered())
    after = time.time_ns() // 1_000_000
    assert before <= made.int >> 80 <= after


def test_ids_of_later_milliseconds_sort_after_earlier_ones_as_text() -> None:
    ids = IdFactory()
    made = []
    for _ in range(20):
        made.append(ids.ordered())
        time.sleep(0.002)
    assert made == sorted(made)


def test_ordered_ids_made_in_one_millisecond_differ_in_their_random_bits() -> None:
    ids = IdFactory()
    made = [ids.ordered() for _ in range(5_000)]
    by_millisecond: dict[int, list[str]] = {}
    for m in made:
        by_millisecond.setdefault(uuid.UUID(m).int >> 80, []).append(m)
    assert max(len(same) for same in by_millisecond.values()) > 1  # some share their time
    assert len(set(made)) == len(made)
    tails = {uuid.UUID(m).int & ((1 << 62) - 1) for m in made}
    assert len(tails) == len(made)


def test_a_resources_id_stays_random() -> None:
    assert uuid.UUID(IdFactory().new()).version == 4
