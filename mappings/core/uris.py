"""The URIs we name in code. No URI string literal lives anywhere else."""

from __future__ import annotations

__all__ = [
    "FHIR_NS",
    "FHIR_VERSION",
    "GRANTEE_PARAMETER",
    "SUBSETTED",
    "XHTML_NS",
]

FHIR_VERSION = "4.0.1"
FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
SUBSETTED = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
#: Our SearchParameter ``Consent.grantee``: every actor a Consent names, at any depth of its
#: provisions (R4's ``actor`` names only the root's). The gateway finds a caller's grants by it.
GRANTEE_PARAMETER = "https://eigendossier.nl/fhir/SearchParameter/Consent-grantee"
