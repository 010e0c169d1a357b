"""Eigen Dossier conformance: what integrators run against a gateway (ours, or their own
server that claims the same contract), black-box over HTTP.

Owns: the kit (``kit``: ``eigendossier conformance run|check|list``), the SMART on FHIR
client the kit and this project's tests, scripts and benchmarks use (``smart``), and a
person at a portal over HTTP (``portal``). May import: ``mappings`` only (the shared
vocabulary and profiles); never ``gateway`` or ``consent``: a kit that shares the server's
code passes the server's bugs.
"""
