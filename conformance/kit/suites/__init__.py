"""The suites; importing this package adds every check to the catalogue, in suite order."""

from conformance.kit.suites import capabilities, consent, profiles, rest, smart

__all__ = ["capabilities", "consent", "profiles", "rest", "smart"]
