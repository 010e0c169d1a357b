"""The validators every care mapping test checks its output with."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.care.definitions import CareDefinitions
from mappings.core.definitions import load_definitions
from mappings.core.validate import Validator

_VALIDATOR = Validator(load_definitions())
_CONFORMANCE = CareDefinitions()


def faults(resource: dict[str, Any]) -> list[str]:
    """Every fault of ``resource`` against the base specification and its profiles."""
    found = [f"{i.diagnostics} @ {i.expression}" for i in _VALIDATOR.validate(resource)]
    for profile in resource.get("meta", {}).get("profile", []):
        assert _CONFORMANCE.knows(profile), profile
        found += [
            f"{i.diagnostics} @ {i.expression}" for i in _CONFORMANCE.check(resource, profile)
        ]
    return found


@pytest.fixture(scope="session")
def care() -> CareDefinitions:
    return _CONFORMANCE
