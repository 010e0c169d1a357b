"""The URIs we name in code. No URI string literal lives anywhere else."""

from __future__ import annotations

__all__ = [
    "FHIR_NS",
    "FHIR_VERSION",
    "SUBSETTED",
    "XHTML_NS",
]

FHIR_VERSION = "4.0.1"
FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
SUBSETTED = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
