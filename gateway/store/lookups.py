"""Lookups behind access decisions and the access log: whose dossier a resource lies in,
where resources are, which resources refer to a caller. Unfiltered by design: their
answers feed decisions and log entries, never a response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import (
    select,
)

from gateway.store.schema import (
    resources,
    search_reference,
    search_token,
)

if TYPE_CHECKING:
    pass
from gateway.store.session_base import Current, SessionBase, pairs_in

__all__ = ["Lookups"]


class Lookups(SessionBase):
    """The session's lookups (see the module docstring)."""

    def patients_of(self, pks: list[int]) -> dict[int, frozenset[str]]:
        """The compartment patients of each resource pk (unfiltered: for decisions only)."""
        found: dict[int, set[str]] = {}
        for start in range(0, len(pks), 100):
            for row in self.lookup("patients_of", pks[start : start + 100]):
                found.setdefault(row[0], set()).add(row[1])
        return {pk: frozenset(p) for pk, p in found.items()}

    def locate(self, refs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The pks of resources by (type, id), whether or not the caller may see them."""
        out: dict[tuple[str, str], int] = {}
        for start in range(0, len(refs), 500):
            rows = self.connection.execute(
                select(resources.c.res_type, resources.c.res_id, resources.c.pk).where(
                    pairs_in(resources.c.res_type, resources.c.res_id, refs[start : start + 500])
                )
            )
            out.update({(t, i): pk for t, i, pk in rows})
        return out

    def referring(self, res_type: str, param: str, targets: list[str]) -> list[Current]:
        """Live resources of ``res_type`` whose reference ``param`` points at ``targets``."""
        pairs = [(kind, ident) for kind, _, ident in (t.partition("/") for t in targets) if ident]
        if not pairs:
            return []
        ref = search_reference.c
        refs = select(ref.res_pk).where(
            ref.res_type == res_type,
            ref.param == param,
            pairs_in(ref.target_type, ref.target_id, pairs),
        )
        rows = self._connection.execute(
            select(resources).where(resources.c.pk.in_(refs), resources.c.deleted.is_(False))
        )
        return [Current(*row) for row in rows]

    def with_identifier(self, res_type: str, system: str, value: str) -> list[str]:
        """Ids of live resources of ``res_type`` carrying identifier ``system|value``."""
        keys = select(search_token.c.res_pk).where(
            search_token.c.res_type == res_type,
            search_token.c.param == "identifier",
            search_token.c.system == system,
            search_token.c.code == value,
        )
        rows = self._connection.execute(
            select(resources.c.res_id).where(
                resources.c.pk.in_(keys), resources.c.deleted.is_(False)
            )
        )
        return [r.res_id for r in rows]
