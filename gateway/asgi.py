"""An ASGI factory configured from the environment, for multi-process serving.

``uvicorn --factory gateway.asgi:from_environment`` (what ``eigendossier serve --workers N``
runs) builds one app per worker process from ``EIGENDOSSIER_*`` variables.
"""

from __future__ import annotations

from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import DEFAULT_DATABASE_URL, Settings
from mappings.care.base import DEFAULT_BASE

__all__ = ["from_environment"]


def from_environment() -> Starlette:
    env = Settings.env
    settings = Settings(
        database_url=env("database_url") or DEFAULT_DATABASE_URL,
        host=env("host") or "127.0.0.1",
        port=int(env("port") or "8080"),
        base_url=env("base_url") or "",
        log_level=env("log_level") or "info",
        open_mode=env("open") == "1",
        max_body_bytes=int(env("max_body_bytes") or str(16 * 1024 * 1024)),
        canonical_base=env("canonical_base") or DEFAULT_BASE,
        oidc_issuer=env("oidc_issuer") or "",
        oidc_client_id=env("oidc_client_id") or "",
        oidc_client_secret=env("oidc_client_secret") or "",
        oidc_name=env("oidc_name") or "OpenID Connect",
        oidc_scope=env("oidc_scope") or "openid",
        oidc_claim=env("oidc_claim") or "sub",
        oidc_link=env("oidc_link") or "account",
        cors_origins=tuple(o.strip() for o in (env("cors_origins") or "").split(",") if o.strip()),
        delivery_worker=env("delivery_worker") == "1",
        reader_threads=int(env("reader_threads") or "0"),
        log_indexer_thread=env("log_indexer_thread") != "0",
    )
    return create_app(settings, migrate=False)
