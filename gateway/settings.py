"""Gateway settings: one frozen object, built by the CLI from options and environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from consent.federation import ProviderConfig
from mappings.care.base import DEFAULT_BASE

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

DEFAULT_DATABASE_URL = "sqlite:///./eigendossier.db"
ENV_PREFIX = "EIGENDOSSIER_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable; see the README's configuration table."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    log_level: str = "info"
    open_mode: bool = False
    max_body_bytes: int = 16 * 1024 * 1024
    pool_size: int = 8
    canonical_base: str = DEFAULT_BASE  # where our profiles and code systems are named
    # an external OpenID Connect provider (a DigiD broker, say); off when no issuer
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_name: str = "OpenID Connect"
    oidc_scope: str = "openid"
    oidc_claim: str = "sub"
    oidc_link: str = "account"
    #: origins allowed to call the API from a browser, besides registered apps' (CORS)
    cors_origins: tuple[str, ...] = ()
    #: the HTTP connection's limits (gateway.http.protocol)
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    #: run a delivery worker (the outbox: notifications) inside this process
    delivery_worker: bool = False
    #: reads and searches served at once by a process's threads (0: the default of its
    #: database: 2 on SQLite, where more only contend for the interpreter; 40 on
    #: PostgreSQL, where each waits on the network)
    reader_threads: int = 0
    #: index the access log in a thread of this process (``serve`` on SQLite runs the
    #: indexer as a process of its own instead: ADR 0028)
    log_indexer_thread: bool = True

    def readers(self) -> int:
        """How many reads and searches a process serves at once (see ``reader_threads``)."""
        if self.reader_threads > 0:
            return self.reader_threads
        return 2 if self.database_url.startswith("sqlite") else 40

    def provider(self) -> ProviderConfig | None:
        """The external login provider, when one is configured."""
        if not self.oidc_issuer:
            return None
        return ProviderConfig(
            issuer=self.oidc_issuer,
            client_id=self.oidc_client_id,
            client_secret=self.oidc_client_secret,
            name=self.oidc_name,
            scope=self.oidc_scope,
            claim=self.oidc_claim,
            link=self.oidc_link,
        )

    @property
    def public_base_url(self) -> str:
        """The FHIR base URL used in links: ``--base-url`` or http://host:port/fhir."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.port}/fhir"

    @property
    def mount_path(self) -> str:
        """The path the FHIR API is served under (the base URL's path, e.g. ``/fhir``)."""
        return urlsplit(self.public_base_url).path.rstrip("/")

    @staticmethod
    def env(name: str, default: str | None = None) -> str | None:
        """``EIGENDOSSIER_<NAME>`` from the environment."""
        return os.environ.get(ENV_PREFIX + name.upper(), default)
