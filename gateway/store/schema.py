"""The tables of the dossier store (SQLAlchemy Core).

``resources`` holds the current version of every resource (its stored JSON bytes, served
as they are); ``resource_versions`` every version ever written (history, vread; a delete is
a version). The ``search_*`` tables are the search index, one row per indexed value, keyed
by the resource's surrogate ``pk``; ``patient_compartment`` says which patients a resource
belongs to (the FHIR patient compartment), which is what access filters join on.
Times are stored as microseconds since the Unix epoch (UTC) so both databases compare them
as integers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "INDEX_TABLES",
    "access_epoch",
    "access_log",
    "accounts",
    "export_files",
    "export_jobs",
    "oauth_apps",
    "oauth_assertions",
    "oauth_authorizations",
    "oauth_codes",
    "oauth_refresh_tokens",
    "oauth_revoked",
    "outbox",
    "parcels",
    "signing_keys",
    "metadata",
    "patient_compartment",
    "resource_versions",
    "resources",
    "search_composite",
    "search_date",
    "search_kind",
    "search_number",
    "search_quantity",
    "search_reference",
    "search_string",
    "search_token",
    "search_uri",
]

metadata = MetaData()

# Byte-wise ordering on PostgreSQL too, so that prefix ranges on normalised strings hold.
_Key = String(255).with_variant(String(255, collation="C"), "postgresql")
_Pk = BigInteger().with_variant(Integer(), "sqlite")

resources = Table(
    "resources",
    metadata,
    Column("pk", _Pk, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("content", LargeBinary, nullable=True),
    UniqueConstraint("res_type", "res_id", name="uq_resources_type_id"),
    Index("ix_resources_type_updated", "res_type", "last_updated"),
    # a type's live rows in key order: a page of a search by type alone stops at its end
    # (migration 0017, ADR 0052)
    Index("ix_resources_type_live", "res_type", "deleted", "pk"),
)

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", LargeBinary, nullable=True),
    Index("ix_versions_updated", "last_updated"),
    Index("ix_versions_type_updated", "res_type", "last_updated"),
)


def _index_table(name: str, *columns: Column[object], value_index: tuple[str, ...]) -> Table:
    return Table(
        name,
        metadata,
        Column("res_pk", _Pk, nullable=False),
        Column("res_type", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        *columns,
        Index(f"ix_{name}_value", "res_type", "param", *value_index, "res_pk"),
        Index(f"ix_{name}_pk", "res_pk", "res_type", "param"),
    )


search_token = _index_table(
    "search_token",
    Column("system", _Key, nullable=True),
    Column("code", _Key, nullable=True),
    Column("text", _Key, nullable=True),
    value_index=("code", "system"),
)
search_string = _index_table(
    "search_string",
    Column("value_norm", _Key, nullable=False),
    Column("value_exact", String(255), nullable=False),
    value_index=("value_norm",),
)
search_date = _index_table(
    "search_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    value_index=("low", "high"),
)
search_reference = _index_table(
    "search_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(512), nullable=True),
    value_index=("target_id", "target_type"),
)
search_quantity = _index_table(
    "search_quantity",
    Column("value", Float, nullable=False),
    Column("system", _Key, nullable=True),
    Column("code", _Key, nullable=True),
    value_index=("value",),
)
search_number = _index_table(
    "search_number",
    Column("value", Float, nullable=False),
    value_index=("value",),
)
search_uri = _index_table(
    "search_uri",
    Column("value", String(512), nullable=False),
    value_index=("value",),
)
search_composite = _index_table(
    "search_composite",
    Column("system", _Key, nullable=True),
    Column("code", _Key, nullable=True),
    Column("v_system", _Key, nullable=True),
    Column("v_code", _Key, nullable=True),
    Column("v_value", Float, nullable=True),
    Column("v_low", BigInteger, nullable=True),
    Column("v_high", BigInteger, nullable=True),
    value_index=("code", "system", "v_code"),
)
# The values an access-log entry shares with most others (its type, subtype, action,
# outcome, the types and roles of its agents and entities, its client and Consent) are
# indexed once per kind of entry rather than once per entry (ADR 0041): the kind's rows
# lie in the tables above under a key of their own, below zero, which no resource has
# (``search.extract.kind_key``), and an entry has one ``search_kind`` row naming its kind.
# A kind's own such row, its key in both columns, says its rows are there.
search_kind = Table(
    "search_kind",
    metadata,
    Column("res_pk", _Pk, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("kind", _Pk, nullable=False),
    Index("ix_search_kind_value", "res_type", "kind", "res_pk"),
    Index("ix_search_kind_pk", "res_pk", "kind"),
)

# A reference row is found by its target through ix_search_reference_value alone: every
# statement that looks a target up also names the type and parameter of the rows it wants
# (a search, a chain, _has, _revinclude, a household's members, Session.referring). A
# second index by target first cost each write a page per row, and an access-log entry
# naming fifty records fifty pages (ADR 0030; migration 0011 dropped it).

# A compartment row carries its resource's type (migration 0013): the entries of one
# patient are found by type, and those of the access log (every AuditEvent lies in its
# patient's compartment) stay out of a search for anything else (ADR 0038).
patient_compartment = Table(
    "patient_compartment",
    metadata,
    Column("res_pk", _Pk, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("res_type", String(64), nullable=False),
    Index("ix_compartment_patient", "patient_id", "res_type", "res_pk"),
    Index("ix_compartment_pk", "res_pk", "patient_id"),  # covering: migration 0012
)

#: One counter, raised by every write transaction that changes who may see what (a
#: Consent, or a resource through which a Consent's actors resolve: see
#: ``gateway.store.access.ACCESS_TYPES``). A gateway process may keep what it derived from
#: those resources for as long as the counter stands still; one row, id 1.
access_epoch = Table(
    "access_epoch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger, nullable=False),
)

#: The access log as it is written: each entry (an AuditEvent's JSON, its id assigned) is
#: committed with the access it records (NEN 7513), as one narrow row appended here. The
#: gateway indexes the entries as AuditEvent resources in batches (``Store.index_access_log``):
#: a batch's rows leave this table in the transaction that stores them in ``resources``, and
#: every read that can show AuditEvents indexes what is here first (ADR 0021).
access_log = Table(
    "access_log",
    metadata,
    Column("seq", _Pk, primary_key=True, autoincrement=True),
    Column("recorded", BigInteger, nullable=False),  # when it was committed: its lastUpdated
    Column("content", LargeBinary, nullable=False),
    # a seq is never given twice, also once the table is empty (migration 0015): an
    # indexer finishing a batch another moved meanwhile deletes by seq
    sqlite_autoincrement=True,
)

#: The outbox: what must leave the dossier because of a change, written in the change's own
#: transaction (``change`` rows), and the deliveries a worker derives from them
#: (``notify`` rows, one per subscription). ``key`` is unique: the idempotency key the
#: receiver gets, so a delivery retried after a crash can be recognised. A worker leases a
#: row (``lease_until``) before it delivers; a lease that runs out makes the row claimable
#: again. Times are microseconds since the epoch, as ``resources.last_updated``.
outbox = Table(
    "outbox",
    metadata,
    Column("pk", _Pk, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(255), nullable=False),
    Column("subscription", String(64), nullable=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", BigInteger, nullable=False),
    Column("lease_until", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    UniqueConstraint("key", name="uq_outbox_key"),
    Index("ix_outbox_due", "state", "next_at"),
)

#: What an adapter hands to a destination outside the dossier (a back office's HTTP endpoint
#: or AMQP exchange), kept beside its ``parcel`` outbox row (same ``key``) until delivered.
#: ``destination`` is the name the operator configured (never its URL: that holds secrets).
parcels = Table(
    "parcels",
    metadata,
    Column("key", String(255), primary_key=True, autoincrement=False),
    Column("destination", String(64), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("headers", Text, nullable=False),  # JSON object of strings
    Column("data", LargeBinary, nullable=False),
    Column("created", BigInteger, nullable=False),
)

#: Bulk Data exports: the job (who asked what, when it expires) and its NDJSON parts, kept in
#: the database so that any gateway process answers the status and the download.
export_jobs = Table(
    "export_jobs",
    metadata,
    Column("id", String(64), primary_key=True, autoincrement=False),
    Column("owner", String(200), nullable=True),  # the app's client_id; None: open mode
    Column("request", Text, nullable=False),
    Column("state", String(16), nullable=False),  # accepted, running, complete, error
    Column("created", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    Column("expires", BigInteger, nullable=False),
    Column("error", String(500), nullable=True),
)
export_files = Table(
    "export_files",
    metadata,
    Column("pk", _Pk, primary_key=True, autoincrement=True),
    Column("job_id", String(64), nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("part", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    UniqueConstraint("job_id", "res_type", "part", name="uq_export_files_part"),
)

INDEX_TABLES = {
    "token": search_token,
    "string": search_string,
    "date": search_date,
    "reference": search_reference,
    "quantity": search_quantity,
    "number": search_number,
    "uri": search_uri,
    "composite": search_composite,
    "kind": search_kind,  # not a parameter's type: the kinds of access-log entries
}

# -- the authorization server's records (consent.registry) ------------------------------
# Secrets never appear here in the clear: passwords and client secrets are scrypt hashes,
# codes and refresh tokens SHA-256 digests; private signing keys are the exception that
# every gateway process must share.

oauth_apps = Table(
    "oauth_apps",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("redirect_uris", Text, nullable=False),  # JSON list
    Column("jwks", Text, nullable=True),  # JSON
    Column("jwks_uri", String(1024), nullable=True),
    Column("secret_hash", String(200), nullable=True),
    Column("organization_identifier", String(300), nullable=True),
    Column("purpose", String(32), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("created", BigInteger, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("username", String(200), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("fhir_user", String(200), nullable=True),
    Column("organization", String(200), nullable=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", BigInteger, nullable=True),
    Column("external_subject", String(64), nullable=True),
    Index("ix_accounts_external_subject", "external_subject", unique=True),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(200), nullable=False),
    Column("redirect_uri", String(1024), nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient", String(64), nullable=True),
    Column("challenge", String(128), nullable=False),
    Column("nonce", String(256), nullable=True),
    Column("expires", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False),
    Column("authorization_id", String(64), nullable=True),
)

oauth_authorizations = Table(
    "oauth_authorizations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(200), nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient", String(64), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Index("ix_oauth_authorizations_user", "username"),
)

oauth_refresh_tokens = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("authorization_id", String(64), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False),
)

oauth_assertions = Table(
    "oauth_assertions",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires", BigInteger, nullable=False),
)

oauth_revoked = Table(
    "oauth_revoked",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires", BigInteger, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("jwk", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("retired", Boolean, nullable=False),
)
