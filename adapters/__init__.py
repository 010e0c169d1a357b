"""Eigen Dossier adapters: what leaves the dossier for other systems.

Owns: declarations to payers (``declarations``: iWmo WMO323 to municipalities, ...).
May import: ``mappings`` only (the shared vocabulary). The dossier reaches an adapter
through a reader handed to it, never by importing the gateway (import-linter contract).
"""
