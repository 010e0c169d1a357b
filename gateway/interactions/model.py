"""The framework-free request and response of a FHIR interaction, and its context.

Routes parse HTTP into a :class:`FhirRequest`, call :func:`gateway.interactions.dispatch`,
and render the :class:`FhirResponse`. Batch and transaction entries are FhirRequests too.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.search.compile import Compiler
from gateway.search.registry import Registry
from gateway.store.access import AccessFilter
from gateway.store.repository import Budget, Store
from mappings.care.definitions import CareDefinitions
from mappings.core.clock import Clock
from mappings.core.definitions import Definitions
from mappings.core.plugins import Operation
from mappings.core.validate import Validator

if TYPE_CHECKING:
    from gateway.interactions.routes import Route
    from gateway.store.repository import Session

__all__ = [
    "Caller",
    "Context",
    "FhirRequest",
    "FhirResponse",
    "IdFactory",
    "Router",
    "Services",
]


class IdFactory:
    """Server-assigned logical ids, as FHIR ids allow (36 of 64 characters)."""

    def new(self) -> str:
        """A random id (UUID version 4, RFC 9562: 122 random bits, the version and the
        variant): it tells nothing of when it was made."""
        value = int.from_bytes(secrets.token_bytes(16), "big")
        value = value & ~(0xF << 76 | 0b11 << 62) | 0x4 << 76 | 0b10 << 62
        return _dashed(value)

    def ordered(self) -> str:
        """An id that sorts by the millisecond it was made (UUID version 7, RFC 9562: 48
        bits of Unix time in milliseconds, the version, 12 random bits, the variant and 62
        random bits), for the access log's
        entries (ADR 0036). Their index rows then go at the end of the id's B-trees, a
        few pages a batch, where random ids took a page an entry each; their time is in
        the entry already (``recorded``)."""
        millis = time.time_ns() // 1_000_000
        random_bits = int.from_bytes(secrets.token_bytes(10), "big")
        rand_a = random_bits >> 68  # 12 bits
        rand_b = random_bits & ((1 << 62) - 1)  # 62 bits
        value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
        return _dashed(value)


def _dashed(value: int) -> str:
    """A 128-bit UUID as ``uuid.UUID`` prints it, without its checks (a third of the cost)."""
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class Services:
    """What every interaction may use; built once in ``create_app`` and passed in."""

    store: Store
    definitions: Definitions
    validator: Validator
    registry: Registry
    compiler: Compiler
    base_url: str
    clock: Clock
    ids: IdFactory
    oauth_base: str | None = None  # where the authorization server is; None in --open mode
    care: CareDefinitions = field(default_factory=CareDefinitions)  # our profiles, code systems
    #: the system-level operations of the installed plugins (``POST [base]/$name``)
    operations: Mapping[str, Operation] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """One interaction's context: the services, what the caller may see and write.

    ``access`` is required: a caller's context starts at :meth:`AccessFilter.nothing` and
    is narrowed per interaction (:meth:`Caller.scoped`), which also records each access.
    Only :func:`gateway.interactions.privileged.system_context` makes a context that sees
    everything, naming its reason in ``privilege``. ``trail`` collects the resources an
    interaction disclosed. ``router`` reaches the routing table and the dispatcher.
    """

    services: Services
    access: AccessFilter
    router: Router
    write: AccessFilter | None = None
    caller: Caller | None = None
    trail: list[tuple[str, str]] = field(default_factory=list)
    privilege: str | None = None  # the reason of a privileged context (system_context)
    #: the row keys of disclosed resources where the handler knew them (the access log
    #: then need not look them up again)
    located: dict[tuple[str, str], int] = field(default_factory=dict)
    #: the compartment patients of disclosed resources (by row key) where the read
    #: returned them (ADR 0033)
    owners: dict[int, frozenset[str]] = field(default_factory=dict)
    #: what the interaction's read session may spend in the database (a read served on
    #: the event loop, ADR 0022); None: no bound
    budget: Budget | None = None

    def again(self, budget: Budget | None = None) -> Context:
        """This context for a request of its own, with ``budget``: the open mode's one
        context serves every request this way."""
        return self.narrowed(self.access, self.write, self.caller, budget)

    def narrowed(
        self,
        access: AccessFilter,
        write: AccessFilter | None,
        caller: Caller | None,
        budget: Budget | None,
    ) -> Context:
        """This context with ``access``, ``write``, ``caller`` and ``budget``, and a trail,
        keys and owners of its own: what :func:`dataclasses.replace` makes, at half its
        cost (every request makes one or two)."""
        return Context(
            services=self.services,
            access=access,
            router=self.router,
            write=write,
            caller=caller,
            privilege=self.privilege,
            budget=budget,
        )

    def disclose(
        self,
        resource_type: str,
        resource_id: str,
        pk: int | None = None,
        patients: frozenset[str] | None = None,
    ) -> None:
        if self.caller is not None:
            self.trail.append((resource_type, resource_id))
            if pk is not None:
                self.located[(resource_type, resource_id)] = pk
                if patients is not None:
                    self.owners[pk] = patients


class Router(Protocol):
    """The routing table and the dispatcher, as handlers see them."""

    @property
    def routes(self) -> Sequence[Route]: ...

    def dispatch(
        self, context: Context, request: FhirRequest, session: Session | None = None
    ) -> FhirResponse: ...

    def create_with_id(
        self,
        context: Context,
        request: FhirRequest,
        session: Session,
        resource_type: str,
        resource_id: str,
    ) -> FhirResponse: ...


class Caller(Protocol):
    """The authorized caller of one request (see ``gateway.interactions.authorize``)."""

    def scoped(self, context: Context, interaction: str, session: Session) -> Context: ...

    def check_resource(self, context: Context, resource: dict[str, Any]) -> None: ...

    def recorded(
        self,
        context: Context,
        interaction: str,
        request: FhirRequest,
        session: Session,
        target: tuple[str, str] | None,
    ) -> None: ...

    def refused(
        self,
        context: Context,
        interaction: str,
        request: FhirRequest,
        session: Session | None,
        target: tuple[str, str] | None,
        status: int,
        reason: str,
    ) -> None: ...


@dataclass(slots=True)
class FhirRequest:
    """A FHIR interaction request, relative to the base URL (``Patient/1/_history``)."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # the parsed JSON resource, or None
    #: the route and groups ``method`` and ``path`` matched (``routes.route_of``), once
    #: matched: the edge matches it to choose where the request runs, and the dispatch
    #: runs it (not given, and not copied by ``dataclasses.replace``: a changed path
    #: matches anew)
    matched: Any = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def prefer(self) -> dict[str, str]:
        """The Prefer header as a dict: ``return``, ``handling``."""
        out: dict[str, str] = {}
        for part in (self.header("prefer") or "").split(";"):
            for item in part.split(","):
                key, _, value = item.strip().partition("=")
                if key:
                    out[key.lower()] = value.strip().strip('"')
        return out


@dataclass(slots=True)
class FhirResponse:
    """Status, headers and a body: a resource dict, stored JSON bytes, or nothing."""

    status: int
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: bytes that are not a FHIR resource (NDJSON of an export): sent as they are, as this
    media: str | None = None
    #: the stored version's time (microseconds) behind Last-Modified, which keeps seconds
    #: only: a Bundle entry's response.lastModified gives it whole
    last_updated: int | None = None
