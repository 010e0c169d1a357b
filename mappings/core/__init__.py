"""The shared vocabulary at the bottom of Eigen Dossier.

The FHIR R4 definitions we vendor (``definitions``), the base-spec validator
(``validate``), the JSON <-> XML codec (``xml``), the FHIR error types (``errors``), the
URIs we name (``uris``) and the clock (``clock``). Pure: reads only its own data files.
"""

from mappings.core.clock import Clock, SystemClock, format_instant
from mappings.core.definitions import Definitions, load_definitions
from mappings.core.errors import FhirError, Invalid, Issue, operation_outcome
from mappings.core.validate import Validator
from mappings.core.xml import XmlCodec

__all__ = [
    "Clock",
    "Definitions",
    "FhirError",
    "Invalid",
    "Issue",
    "SystemClock",
    "Validator",
    "XmlCodec",
    "format_instant",
    "load_definitions",
    "operation_outcome",
]
