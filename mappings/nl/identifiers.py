"""Dutch identifier systems (Nictiz NamingSystem URIs) and their checks.

- BSN (burgerservicenummer): nine digits passing the eleven test ("elfproef") with the
  BSN weights 9..2 and -1 for the last digit (Wet algemene bepalingen
  burgerservicenummer, art. 1; Logius). A leading zero is part of the number.
"""

from __future__ import annotations

__all__ = ["BSN", "bsn_error", "is_bsn"]

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def bsn_error(value: str) -> str | None:
    """Why ``value`` is not a BSN, or None when it is one."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return "A BSN has exactly nine digits"
    total = sum(int(digit) * weight for digit, weight in zip(value, _BSN_WEIGHTS, strict=True))
    if total % 11 != 0 or total == 0:
        return "The BSN fails the eleven test (elfproef)"
    return None


def is_bsn(value: str) -> bool:
    """Whether ``value`` is a well-formed BSN (nine digits passing the eleven test)."""
    return bsn_error(value) is None
