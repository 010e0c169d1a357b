"""The dossier an adapter is handed (:class:`mappings.core.plugins.Dossier`), in process.

Opened through the one privileged door (:func:`system_context`) with the reason the adapter
gives: it reads every client's dossier, because it acts under a legal basis other than the
client's Consent (a declaration: the care contract). What it reads and writes is logged in
each client's own access log as the adapter declares it (:class:`Disclosure`): the purpose of
use, the resources concerned and the organisation the data goes to.

Writes are ordinary PUTs through the interactions (validated and indexed as any write), all
in one transaction with their access-log entries: all or nothing. What the adapter sends out
(:meth:`InProcessDossier.send`) goes into the outbox in one transaction with its access-log
entries, for the delivery worker (:mod:`gateway.destinations`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import orjson

from consent.audit import Access, audit_event
from consent.context import AccessContext, Kind
from consent.scopes import parse_scopes
from gateway.destinations import DestinationError, configured
from gateway.interactions.authorize import commit_events, names_access_log, write_events
from gateway.interactions.common import check_id, check_type, validated
from gateway.interactions.model import FhirRequest, Router, Services
from gateway.interactions.privileged import system_context
from gateway.search.dates import to_micros
from gateway.search.execute import stream_search
from gateway.search.params import parse_search
from gateway.store.repository import Session
from mappings.core.errors import Conflict, Unprocessable
from mappings.core.plugins import Disclosure, Parcel

__all__ = ["InProcessDossier", "server_context"]

_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def server_context(source: str, requester: str) -> AccessContext:
    """The gateway itself as the one acting (for the access log): a part of it (``source``:
    ``declare``, ``delivery``) at the request of ``requester`` (``operator``, an account)."""
    return AccessContext(
        kind=Kind.SYSTEM,
        client_id=f"eigendossier-{source}",
        scopes=parse_scopes("")[0],
        subject=requester,
        token_id="",
    )


class InProcessDossier:
    """The dossier for one adapter run: ``source`` names the adapter (``declarations``),
    ``requester`` who started it (an account, a client id, ``operator`` on the command line)."""

    def __init__(
        self,
        services: Services,
        reason: str,
        *,
        source: str,
        requester: str,
        router: Router,
    ) -> None:
        self._services = services
        self._context = system_context(services, reason, router)
        self._source = source
        self._requester = requester

    @property
    def base_url(self) -> str:
        return self._services.base_url

    def now(self) -> dt.datetime:
        return self._services.clock.now()

    def search(
        self, resource_type: str, query: Sequence[tuple[str, str]], chunk: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        services = self._services
        request = parse_search(resource_type, list(query), services.registry, strict=True)
        if names_access_log(resource_type, query):
            services.store.catch_up_access_log()
        with services.store.read() as session:
            for matches in stream_search(
                session.connection, services.compiler, request, self._context.access, chunk
            ):
                yield [orjson.loads(match.content) for match in matches]

    def record(
        self,
        resources: Sequence[dict[str, Any]],
        disclosures: Sequence[Disclosure],
        new: Sequence[dict[str, Any]] = (),
    ) -> None:
        router, context = self._context.router, self._context
        fresh = []
        for resource in new:  # validated before the transaction: it holds the lock briefly
            resource_type, resource_id = str(resource.get("resourceType")), str(resource.get("id"))
            check_type(context, resource_type)
            check_id(resource_id)
            fresh.append(validated(context, dict(resource), resource_type, resource_id))
        events = self._events(disclosures)

        def unit(session: Session) -> None:
            taken = session.locate([(r["resourceType"], r["id"]) for r in fresh])
            if taken:
                resource_type, resource_id = min(taken)
                raise Conflict(f"{resource_type}/{resource_id} exists already")
            for resource in resources:
                path = f"{resource['resourceType']}/{resource['id']}"
                router.dispatch(context, FhirRequest("PUT", path, body=resource), session)
            session.add_new([dict(r) for r in fresh], method="PUT")
            write_events(self._services, session, [dict(e) for e in events])

        self._services.store.write(unit)

    def disclose(self, disclosures: Sequence[Disclosure]) -> None:
        events = self._events(disclosures)
        if events:
            commit_events(self._services, events)

    def send(
        self, destination: str, parcels: Sequence[Parcel], disclosures: Sequence[Disclosure]
    ) -> int:
        try:
            known = configured()
        except DestinationError as error:
            raise Unprocessable(str(error), "destination") from None
        if destination not in known:
            raise Unprocessable(
                f"No destination {destination!r:.70} is configured "
                f"(EIGENDOSSIER_DESTINATION_{destination.upper():.64}=URL)",
                "destination",
            )
        for parcel in parcels:
            if not parcel.key or len(parcel.key) > 255:
                raise Unprocessable("A parcel's key is 1 to 255 characters", "key")
        events = self._events(disclosures)
        now = to_micros(self._services.clock.now())
        rows = [(p.key, p.content_type, p.headers, p.data) for p in parcels]

        def unit(session: Session) -> int:
            fresh = session.enqueue_parcels(destination, rows, now)
            write_events(self._services, session, [dict(e) for e in events])
            return fresh

        return self._services.store.write(unit)

    def _events(self, disclosures: Sequence[Disclosure]) -> list[dict[str, Any]]:
        services = self._services
        now = services.clock.now()
        events = []
        for item in disclosures:
            who = replace(server_context(self._source, self._requester), purpose=item.purpose)
            access = Access(
                interaction=f"${self._source}",
                outcome="0",
                recorded=now,
                patient=item.patient,
                objects=item.objects,
                description=item.description,
            )
            event = audit_event(who, access, services.base_url)
            event["action"] = item.action
            if item.recipient:
                event["agent"].append(
                    {
                        "type": {
                            "coding": [
                                {
                                    "system": _PARTICIPATION,
                                    "code": "IRCP",
                                    "display": "information recipient",
                                }
                            ]
                        },
                        "who": {"reference": item.recipient},
                        "requestor": False,
                    }
                )
            events.append(event)
        return events
