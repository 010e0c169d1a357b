"""The process's memory: what startup built is kept out of the cycle collector's passes."""

from __future__ import annotations

import asyncio
import gc

from gateway.app import build_services
from gateway.http.app import build_http_app
from gateway.http.memory import settle_heap
from gateway.settings import Settings


def test_settling_leaves_later_collections_only_what_came_after() -> None:
    gc.unfreeze()
    try:
        tracked = len(gc.get_objects())
        settle_heap()
        assert gc.get_freeze_count() > tracked // 2
        assert len(gc.get_objects()) < tracked // 10
    finally:
        gc.unfreeze()


def test_the_app_settles_its_heap_when_it_starts_serving(own_database: str) -> None:
    settings = Settings(database_url=own_database, open_mode=True)
    services = build_services(settings, migrate=True)
    app = build_http_app(services, settings, None)
    gc.unfreeze()

    async def start_and_stop() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    try:
        assert asyncio.run(start_and_stop()) > 0
    finally:
        gc.unfreeze()
        services.store.dispose()


def test_settling_can_set_how_seldom_the_collector_runs() -> None:
    """The access log's indexer settles its heap with thresholds of its own (ADR 0052)."""
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        settle_heap(thresholds=(50_000, 20, 100))
        assert gc.get_threshold() == (50_000, 20, 100)
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
