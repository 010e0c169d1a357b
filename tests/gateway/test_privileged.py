"""The one privileged door: every unrestricted use of the dossier goes through
``system_context`` or ``Session.unguarded``, names its reason, and is logged."""

from __future__ import annotations

import logging
import pathlib
import re

import pytest

from gateway.interactions.model import Services
from gateway.interactions.privileged import system_context
from gateway.loading import load

ROOT = pathlib.Path(__file__).parents[2]
SOURCES = sorted(
    p
    for package in ("gateway", "consent", "mappings")
    for p in (ROOT / package).rglob("*.py")
    if "migrations" not in p.parts
)


def _uses(pattern: str) -> set[str]:
    found = set()
    for path in SOURCES:
        if re.search(pattern, path.read_text()):
            found.add(str(path.relative_to(ROOT)))
    return found


def test_only_the_door_makes_an_unrestricted_filter() -> None:
    # compile.py builds a granular scope's own predicate, always inside a caller's filter
    assert _uses(r"AccessFilter\.unrestricted\(\)") == {
        "gateway/interactions/privileged.py",
        "gateway/search/compile.py",
    }


def test_only_the_door_lifts_a_write_guard() -> None:
    assert _uses(r"\.guard = None|guard = .*, None|\.guard, None") == {
        "gateway/store/session_base.py"
    }
    assert _uses(r"\.unguarded\(") == {"gateway/interactions/consent_operations.py"}


def test_every_system_context_names_its_reason() -> None:
    callers = _uses(r"system_context\(")
    assert callers == {
        "gateway/interactions/privileged.py",
        "gateway/http/app.py",
        "gateway/loading.py",
        "gateway/interactions/dossier.py",  # the adapters' dossier (declarations)
        "gateway/delivery.py",  # the worker setting a Subscription's status
    }
    with pytest.raises(ValueError, match="reason"):
        system_context(None, "  ", None)  # type: ignore[arg-type]


def test_a_privileged_load_is_logged_with_its_reason(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="eigendossier.privileged"):
        load(services, [{"resourceType": "Patient", "id": "p"}], "demo load")
    assert [r.getMessage() for r in caplog.records] == ["privileged access to the store: demo load"]
