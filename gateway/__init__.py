"""Eigen Dossier gateway: the HTTP app, the FHIR interactions, the store and search, the CLI.

Owns: the FHIR R4 REST API over the client's dossier (``interactions``, framework-free),
its HTTP edge (``http``, Starlette), the store (``store``, SQLAlchemy Core: versions, search
index, one database transaction per interaction) and search (``search``: parameters from
the official definitions compiled into one SQL query with an access-filter seam).
May import: ``mappings`` (and, once it exists, ``consent``). Never imported by them.
"""
