"""PostgreSQL's upkeep of the gateway's own tables, beside the access log's indexer (ADR 0045).

Two things PostgreSQL leaves to its autovacuum, which the gateway's speed depends on:

- **The access log's queue.** Every entry of a read is inserted into ``access_log`` by its
  request and deleted by the indexer (ADR 0034): the table holds a few thousand live rows
  and, until a ``VACUUM`` reclaims them, every deleted one, at the front of its key's
  index, where each commit of the log reads the first waiting entry (the backlog) and each
  round of the indexer its batch. Autovacuum comes by once a naptime (a minute by
  default), and never when it is off. Measured: with 84,147 dead rows, the database spent
  408 µs per consent-on read; with none, 292. So the indexer's process vacuums the queue
  itself, every :data:`UPKEEP_EVERY` seconds, skipping it when another process is at it.
- **Planner statistics.** With autovacuum off, ``ANALYZE`` never runs, and PostgreSQL
  plans blind. Measured on a dossier whose access log had grown by 75,000 entries since
  the last statistics: a consent-on read by id took 453 µs in its statement instead of 36
  (the semi-join of the client's granted patients read all their compartment rows), and
  the gateway served 1,226 reads/s instead of 1,848. So when autovacuum is off the upkeep
  analyzes the gateway's tables by autovacuum's own rule (more rows changed since the last
  statistics than 50 and a tenth of the table), and says once that it does.

Nothing here changes what a table holds. A failure is the caller's to log.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Engine, bindparam, text

__all__ = ["QUEUE", "UPKEEP_EVERY", "autovacuum_on", "keep_up", "stale"]

#: seconds between two rounds of the upkeep (ADR 0045): at 2,000 reads a second, a round
#: finds some 4,000 dead rows in the queue, a vacuum of milliseconds
UPKEEP_EVERY = 2.0
#: the access log's queue: the table the upkeep vacuums
QUEUE = "access_log"
#: autovacuum's defaults (``autovacuum_analyze_threshold`` and ``_scale_factor``): a table
#: is analyzed when more rows changed since its last statistics than these make of it
ANALYZE_THRESHOLD = 50
ANALYZE_SCALE = 0.1

_STALE = text(
    """
    SELECT s.relname
    FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.relname IN :names
      AND s.n_mod_since_analyze > :threshold + :scale * greatest(c.reltuples, 0)
    ORDER BY s.relname
    """
).bindparams(bindparam("names", expanding=True))


def autovacuum_on(connection: Connection) -> bool:
    """Whether the server's autovacuum runs."""
    return connection.exec_driver_sql("SHOW autovacuum").scalar() == "on"


def stale(connection: Connection, tables: Iterable[str]) -> list[str]:
    """Those of ``tables`` (in the current schema) whose statistics autovacuum would renew:
    never gathered for the rows they hold, or older than as many changes as its rule
    allows. The counts are PostgreSQL's cumulative statistics, which each backend reports
    within a second or so of its transactions."""
    names = sorted(tables)
    if not names:
        return []
    found = connection.execute(
        _STALE, {"names": names, "threshold": ANALYZE_THRESHOLD, "scale": ANALYZE_SCALE}
    )
    return [row[0] for row in found]


def keep_up(engine: Engine, tables: Iterable[str], *, analyze: bool) -> tuple[str, ...]:
    """One round: vacuum the queue (skipped when another process is vacuuming it); with
    ``analyze``, analyze those of ``tables`` whose statistics are stale. Outside any
    transaction (``VACUUM`` runs in none). The tables it analyzed."""
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as raw:
        connection = raw.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(f"VACUUM (SKIP_LOCKED) {quote(QUEUE)}")
        analyzed = stale(connection, tables) if analyze else []
        if analyzed:
            names = ", ".join(quote(name) for name in analyzed)
            connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {names}")
    return tuple(analyzed)
