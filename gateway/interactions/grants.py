"""Who a caller is to a Consent, and which grants they hold: derived per access epoch.

:func:`actors_of` gives the references a Consent may name to permit a caller (the user,
their roles, care teams and organisation, or a backend app's organisation);
:func:`load_grants` reduces the active Consents naming them to rules for one action
(:func:`consent.policy.grant_from`). :class:`GrantCache` keeps both per process while the
store's access epoch stands still (ADR 0008).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar, cast

import orjson

from consent.context import AccessContext, Kind
from consent.policy import (
    Grant,
    Request,
    grant_from,
    next_change,
)
from gateway.interactions.model import Services
from gateway.store.repository import Session

__all__ = ["GrantCache", "actors_of", "grants_until", "load_grants"]

T = TypeVar("T")


def actors_of(session: Session, who: AccessContext) -> frozenset[str]:
    """The references a Consent may name to permit ``who``: the user, their roles, their
    care teams and organisation (or the backend app's organisation); a network member
    only their own RelatedPerson."""
    if who.kind == Kind.RELATED_PERSON:
        # a network member is who the client names, nothing more: a care team they are
        # listed in (to coordinate) does not pass them the professionals' grants
        return frozenset({who.user}) if who.user else frozenset()
    actors: set[str] = set()
    if who.kind == Kind.PRACTITIONER and who.user:
        actors.add(who.user)
        if who.user.startswith("Practitioner/"):
            actors.update(
                f"PractitionerRole/{r.res_id}"
                for r in session.referring("PractitionerRole", "practitioner", [who.user])
            )
    if who.organization:
        actors.add(who.organization)
    if who.kind == Kind.SYSTEM and who.organization_identifier:
        system, _, value = who.organization_identifier.partition("|")
        actors.update(
            f"Organization/{i}" for i in session.with_identifier("Organization", system, value)
        )
    if actors:
        actors.update(
            f"CareTeam/{t.res_id}"
            for t in session.referring("CareTeam", "participant", sorted(actors))
        )
    return frozenset(actors)


def load_grants(
    session: Session, actors: frozenset[str], action: str, purpose: str | None, services: Services
) -> tuple[Grant, ...]:
    """The rules of every active Consent naming one of ``actors``, for ``action``."""
    return grants_until(session, actors, action, purpose, services.clock.now())[0]


def grants_until(
    session: Session, actors: frozenset[str], action: str, purpose: str | None, now: dt.datetime
) -> tuple[tuple[Grant, ...], dt.datetime | None]:
    """:func:`load_grants`, and the first instant after ``now`` when they may differ."""
    if not actors:
        return (), None
    request = Request(actors, action, purpose, now)
    grants = []
    changes = []
    for row in session.referring("Consent", "grantee", sorted(actors)):
        if row.content is None:
            continue
        resource = orjson.loads(row.content)
        grant = grant_from(resource, request)
        if grant is not None:
            grants.append(grant)
        if (change := next_change(resource, now)) is not None:
            changes.append(change)
    return tuple(grants), min(changes, default=None)


class GrantCache:
    """A process's memory of callers' actors and grants, per access epoch.

    Deriving them reads the Consents naming the caller and the CareTeams, PractitionerRoles
    and Organizations between (a GP practice granted by a thousand clients: a thousand
    Consents) on every request. Every request still reads the store's access epoch, which
    each write of those types raises in its own transaction; an entry serves only requests
    that read the epoch it was derived under, and a grant entry only until the next instant
    one of its Consents' periods starts or ends. So a revocation, a new care-team member or
    an expiring grant is seen on the very next request, as without the cache.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._entries: dict[Hashable, tuple[object, dt.datetime | None]] = {}

    def get(
        self,
        epoch: int | None,
        key: Hashable,
        now: dt.datetime,
        derive: Callable[[], tuple[T, dt.datetime | None]],
    ) -> T:
        """The entry for ``key`` under ``epoch``, derived (value, valid-until) when missing.

        A key names what its value is (``("grants", ...)`` holds grants, and the same by
        patient): one key, one type.
        """
        found = self.peek(epoch, key, now)  # never one without the epoch counter
        if found is not None:
            return cast(T, found)
        value, until = derive()
        self.keep(epoch, key, value, until)
        return value

    def peek(self, epoch: int | None, key: Hashable, now: dt.datetime) -> object | None:
        """The entry for ``key`` when it was kept under ``epoch`` and holds at ``now``."""
        if epoch is None:
            return None
        with self._lock:
            found = self._entries.get(key) if epoch == self._epoch else None
        if found is not None and (found[1] is None or now < found[1]):
            return found[0]
        return None

    def keep(
        self, epoch: int | None, key: Hashable, value: object, until: dt.datetime | None
    ) -> None:
        """Keep ``value`` for ``key`` under ``epoch``, until ``until`` (None: the epoch's end)."""
        if epoch is None:
            return
        with self._lock:
            if epoch != self._epoch:  # any other value, even a lower one (a restored backup)
                self._epoch = epoch
                self._entries = {}
            if len(self._entries) >= self._max:
                self._entries = {}
            self._entries[key] = (value, until)
