"""Eigen Dossier adapters: what leaves the dossier for other systems.

Owns: declarations to payers (``declarations``: iWmo WMO323 to municipalities, Vektis
AW319 and GDS801 to insurers, the answers back).
May import: ``mappings`` only (the shared vocabulary). An adapter is a plugin of the gateway
(entry point ``eigendossier.plugins``, ADR 0012): the dossier reaches it through
:class:`mappings.core.plugins.Dossier`, never by importing the gateway (import-linter).
"""
