"""The seams through which adapters join the gateway without importing it (ADR 0012).

An adapter (declarations, delivery, exports) is a plugin: an object named in the entry-point
group :data:`PLUGIN_GROUP` of its distribution. The gateway finds plugins at start-up and
hands each one what it may use, never its own internals:

- a :class:`Dossier`: the in-process reader and recorder, opened through the gateway's one
  privileged door with a stated reason (the adapter acts under a legal basis other than the
  client's Consent, such as the care contract for a declaration); every client whose data
  it reads or records is logged by the gateway as a :class:`Disclosure`; what it hands to
  a destination outside the dossier (a back office) it leaves as :class:`Parcel` s in the
  gateway's outbox, which delivers them;
- a place for its commands (``eigendossier <name> ...``) and its FHIR operations
  (``POST [base]/$<name>``), whose OperationDefinitions the plugin publishes itself.

Nothing here does I/O: these are the shapes both sides agree on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "PLUGIN_GROUP",
    "Disclosure",
    "Dossier",
    "DossierOpener",
    "Operation",
    "OperationCall",
    "Parcel",
    "Plugin",
]

PLUGIN_GROUP = "eigendossier.plugins"


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One client's data read or recorded by an adapter: a line in that client's access log.

    ``purpose`` is a v3-ActReason code (``HPAYMT`` for a declaration); ``objects`` are the
    resources concerned (``Claim/1``); ``recipient`` the organisation the data goes to.
    """

    patient: str
    purpose: str
    action: str  # AuditEvent action: C, R, U, E
    objects: tuple[str, ...] = ()
    recipient: str | None = None  # Organization/id
    description: str = ""  # never health data


@dataclass(frozen=True, slots=True)
class Parcel:
    """Data for a destination outside the dossier, delivered by the gateway's workers.

    ``key`` is the idempotency key the receiver gets (an HTTP ``Idempotency-Key``, an AMQP
    ``message_id``): the same key is put in the outbox once, so a run repeated with the same
    content sends nothing new. ``headers`` travel with it (HTTP ``X-Eigendossier-<name>``,
    AMQP message headers): never health data.
    """

    key: str
    content_type: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Dossier(Protocol):
    """The dossier as an adapter sees it."""

    @property
    def base_url(self) -> str: ...

    def now(self) -> dt.datetime:
        """The gateway's clock (aware)."""
        ...

    def search(
        self, resource_type: str, query: Sequence[tuple[str, str]], chunk: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every match of a FHIR search, in chunks: for work over a whole period."""
        ...

    def record(
        self,
        resources: Sequence[dict[str, Any]],
        disclosures: Sequence[Disclosure],
        new: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Write ``resources`` (each with its id: create or update), ``new`` (ids that do
        not exist yet: written in bulk) and the access-log entries of ``disclosures``, all
        in one transaction: all of it or nothing. Each resource is validated as any write
        is; a fault, or an id in ``new`` that exists, raises and nothing is written."""
        ...

    def disclose(self, disclosures: Sequence[Disclosure]) -> None:
        """Only the access-log entries (a read that records nothing else)."""
        ...

    def send(
        self, destination: str, parcels: Sequence[Parcel], disclosures: Sequence[Disclosure]
    ) -> int:
        """Leave ``parcels`` in the outbox for ``destination`` (a name the operator
        configured) with the access-log entries of ``disclosures``, in one transaction; the
        gateway's workers deliver them, at least once. How many parcels were new (a key
        the outbox holds already is not sent again). An unknown destination raises
        :class:`mappings.core.errors.Unprocessable` and nothing is written."""
        ...


#: ``open_dossier(database_url, reason)``: a dossier for the length of a ``with`` block.
DossierOpener = Callable[[str | None, str], AbstractContextManager[Dossier]]


@dataclass(frozen=True, slots=True)
class OperationCall:
    """A call of a plugin's operation: its parameters and who asked."""

    parameters: dict[str, list[Any]]  # name -> values (valueString, valueCode, ...)
    requester: str  # an account or client id, for the log; never health data
    base_url: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """A system-level operation ``POST [base]/$name`` a plugin offers.

    ``scope``: the SMART system scope a backend app needs (administrators may always call
    it). ``run`` answers a FHIR resource (a Bundle, Parameters); it raises
    :class:`mappings.core.errors.Invalid` for bad input.
    """

    name: str
    definition: str  # canonical URL of its OperationDefinition
    scope: str  # e.g. "system/Claim.c"
    reason: str  # why the dossier is opened for it (the privileged door logs it)
    run: Callable[[Dossier, OperationCall], dict[str, Any]]
    affects_state: bool = True


@dataclass(slots=True)
class Plugin:
    """What an adapter distribution offers: its commands and its operations.

    Their FHIR vocabulary (profiles, code systems, OperationDefinitions) belongs to
    :mod:`mappings`, so that ``eigendossier definitions load`` serves it with the rest."""

    name: str
    commands: Callable[[DossierOpener], Any] | None = None  # -> a typer.Typer
    operations: Sequence[Operation] = field(default_factory=tuple)
