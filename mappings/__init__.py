"""Eigen Dossier mappings: the shared FHIR vocabulary and the domain <-> FHIR mappings.

Owns: the FHIR R4 definitions we vendor (structure, bindings, search parameters), the
validator, the JSON/XML codec, the FHIR error types, URIs and the clock (``mappings.core``).
Pure: no database, no network. Imports nothing of ours.
"""
