"""What a check is, what it can come to, and the catalogue every suite adds its checks to.

A check has a stable id (``smart-backend-03``), a title, the requirement it verifies with a
link (a SMART 2.2 section, a FHIR R4 page, our docs), its inputs and what it asserts. Its
function raises :class:`Failed` when the server does not do what the requirement says,
:class:`Skipped` when it cannot be run here (no credentials given), and anything else is
an error of the run (an unreachable server, an answer that is not FHIR), reported per check
without a traceback. A check is *required* unless marked optional; the exit code is 0 only
when every required check of the suites run passed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.kit.session import Session

__all__ = [
    "CATALOGUE",
    "SUITES",
    "Check",
    "Failed",
    "Result",
    "Skipped",
    "Status",
    "check",
    "expect",
]

SMART = "https://hl7.org/fhir/smart-app-launch/STU2.2"
FHIR = "https://hl7.org/fhir/R4"
OURS = "docs"  # the project's own documents, by their path in the source

#: the suites, in the order they run
SUITES = ("capabilities", "smart", "rest", "consent", "profiles")


class Failed(AssertionError):
    """The server does not meet the requirement; the message says what it did instead."""


class Skipped(Exception):
    """The check cannot run here; the message says what it needs."""


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    suite: str
    title: str
    requirement: str
    link: str
    inputs: str
    asserts: str
    run: Callable[[Session], None]
    required: bool = True
    needs: tuple[str, ...] = ()  # checks that must have passed first


@dataclass(frozen=True, slots=True)
class Result:
    check: Check
    status: Status
    message: str = ""
    seconds: float = 0.0
    details: tuple[str, ...] = field(default_factory=tuple)


CATALOGUE: list[Check] = []


def check(
    id: str,
    title: str,
    *,
    requirement: str,
    link: str,
    inputs: str,
    asserts: str,
    required: bool = True,
    needs: tuple[str, ...] = (),
) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    """Add the decorated function to the catalogue as a check (its suite: the id's prefix)."""
    suite = {
        "cap": "capabilities",
        "smart": "smart",
        "rest": "rest",
        "consent": "consent",
        "profiles": "profiles",
    }[id.split("-", 1)[0]]

    def register(function: Callable[[Session], None]) -> Callable[[Session], None]:
        if any(c.id == id for c in CATALOGUE):
            raise ValueError(f"check id {id} is used twice")
        CATALOGUE.append(
            Check(id, suite, title, requirement, link, inputs, asserts, function, required, needs)
        )
        return function

    return register


def expect(condition: object, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Failed(message)
