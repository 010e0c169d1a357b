"""The conformance kit: checks over HTTP against a server that claims to be an Eigen Dossier
gateway, and offline checks of the files an integrator produces.

- :mod:`~conformance.kit.model`: checks, results, the catalogue;
- :mod:`~conformance.kit.session`: one run (options, HTTP, SMART flows, what checks learn);
- :mod:`~conformance.kit.judge`: valid R4? (HL7's JSON schema, fhir.resources);
- :mod:`~conformance.kit.suites`: capabilities, smart, rest, consent, profiles;
- :mod:`~conformance.kit.runner`, :mod:`~conformance.kit.report`: running, and the console
  summary, JUnit XML and FHIR TestReport;
- :mod:`~conformance.kit.files`: FHIR JSON, WMO323 and AW319 files offline;
- :mod:`~conformance.kit.cli`: ``eigendossier conformance run|check|list``.
"""
