"""The care mappings: ZRM, krachtplan and crisis plan, visits and the Omaha System.

Each is a plain typed model with ``*_to_fhir`` and ``*_from_fhir`` (a lossless round
trip), a documented FHIR profile, and a Dutch narrative on every resource it builds.
"""
