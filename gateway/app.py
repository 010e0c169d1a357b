"""``create_app``: wire settings, clock and id factory into the services and the HTTP app.

Nothing here is global: every dependency is built from the arguments and passed down.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine
from starlette.applications import Starlette

from gateway.http.app import build_http_app
from gateway.interactions.model import IdFactory, Services
from gateway.plugins import load_plugins, operations_of
from gateway.search.compile import Compiler
from gateway.search.extract import Extractor
from gateway.search.registry import Registry
from gateway.security import build_security
from gateway.settings import Settings
from gateway.store.engine import make_engine
from gateway.store.migrate import is_current, upgrade
from gateway.store.repository import Store
from mappings.care.base import Canon
from mappings.care.definitions import CareDefinitions
from mappings.core.clock import Clock, SystemClock
from mappings.core.definitions import load_definitions
from mappings.core.validate import Validator

__all__ = ["SchemaBehind", "build_services", "create_app"]


class SchemaBehind(RuntimeError):
    """The database schema is older than this version of the gateway."""


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
    engine: Engine | None = None,
    migrate: bool | None = None,
) -> Services:
    """The services of one gateway process.

    ``migrate``: apply migrations first (default: only on the embedded SQLite database;
    on PostgreSQL run ``eigendossier db upgrade`` once, since many processes share it).
    """
    clock = clock or SystemClock()
    engine = engine or make_engine(settings.database_url, pool_size=settings.pool_size)
    if migrate is None:
        migrate = engine.dialect.name == "sqlite"
    if migrate:
        upgrade(engine)
    elif not is_current(engine):
        raise SchemaBehind("The database schema is not current: run `eigendossier db upgrade`")
    definitions = load_definitions()
    care = CareDefinitions(Canon(settings.canonical_base))
    registry = Registry(definitions, care.search_parameters)
    base_url = settings.public_base_url
    store = Store(engine, Extractor(registry, base_url), clock)
    return Services(
        store=store,
        definitions=definitions,
        validator=Validator(definitions),
        registry=registry,
        compiler=Compiler(registry, base_url, clock),
        base_url=base_url,
        clock=clock,
        ids=ids or IdFactory(),
        care=care,
        operations=operations_of(load_plugins()),
    )


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
    migrate: bool | None = None,
) -> Starlette:
    """The ASGI app for ``settings``: tokens and consent required unless ``open_mode``."""
    services = build_services(settings, clock=clock, ids=ids, migrate=migrate)
    security = None
    if not settings.open_mode:
        security = build_security(services, provider=settings.provider())
        services = replace(services, oauth_base=security.server.oauth_base)
    return build_http_app(services, settings, security)
