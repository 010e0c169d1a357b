"""Load resources into the store as one FHIR transaction, through the ordinary interactions.

Used by ``eigendossier definitions load`` and ``eigendossier demo load``: every resource is
a PUT by id (create or update), validated against the base specification and against the
profiles it claims, exactly as an API request would be; all or nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.interactions.dispatch import Dispatcher, dispatch
from gateway.interactions.model import FhirRequest, Services
from gateway.interactions.privileged import system_context

__all__ = ["as_transaction", "load"]


def as_transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle putting each resource under its own id."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def load(
    services: Services, resources: list[dict[str, Any]], reason: str = "loading resources"
) -> Counter[str]:
    """Put ``resources`` in one transaction; how many were created and updated.

    A fault anywhere raises the :class:`~mappings.core.errors.FhirError` of the first
    entry that failed, and nothing is kept. This runs with the database's own authority
    (the operator's), as ``db upgrade`` does: no token, no consent; through the one
    privileged door, naming ``reason``.
    """
    request = FhirRequest("POST", "", body=as_transaction(resources))
    response = dispatch(system_context(services, reason, Dispatcher()), request)
    outcome: Counter[str] = Counter()
    body = response.body if isinstance(response.body, dict) else {}
    for entry in body.get("entry", []):
        status = str(entry["response"]["status"])
        outcome["created" if status.startswith("201") else "updated"] += 1
    return outcome
