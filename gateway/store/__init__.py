"""The dossier store: SQLAlchemy Core over SQLite (embedded default) or PostgreSQL.

Every interaction runs in one database transaction (:class:`~gateway.store.repository.Store`);
versions, search index rows and the patient compartment are written together.
"""
