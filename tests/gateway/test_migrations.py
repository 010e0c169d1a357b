"""The migrations build exactly the schema the code describes, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.interactions.model import Services
from gateway.store.migrate import is_current
from gateway.store.schema import metadata


def test_migrated_schema_matches_the_tables_in_code(services: Services) -> None:
    engine = services.store.engine
    assert is_current(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
