"""Turn a resource into search index rows (FHIR R4 search.html, per parameter type).

Rows are plain dicts per index table, ready for one executemany insert each. Strings are
stored twice: exact, and normalised (case-folded, accents removed) for the default
prefix match. Dates are stored as ranges (see :mod:`gateway.search.dates`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterator, KeysView, Mapping
from typing import Any

import orjson

from gateway.search.dates import MAX, MIN, parse_date_range
from gateway.search.paths import (
    Evaluator,
    Typed,
    compares_values,
    first_keys,
    split_by_key,
    split_by_second_key,
)
from gateway.search.registry import Registry, SearchParam

__all__ = [
    "KIND_PARAMS",
    "SET_FEWEST",
    "SET_PARAMS",
    "Extractor",
    "IndexRows",
    "kinded",
    "normalise",
    "split_reference",
]

IndexRows = dict[str, list[dict[str, Any]]]
_KEY = 255
_STRING_PARTS = {
    "HumanName": ("family", "given", "prefix", "suffix", "text"),
    "Address": ("line", "city", "district", "state", "postalCode", "country", "text"),
}
#: an item's JSON up to this size is remembered with its rows (larger ones rarely repeat)
_MEMO_BYTES = 2048
#: a top-level value's JSON up to this size is remembered with its rows: the fifty records
#: a repeated search disclosed, as its access-log entry names them, are some 15 KiB
_VALUE_MEMO_BYTES = 32768
#: ((index table, the row's items): its identity, the row without res_pk and res_type)
_Found = tuple[tuple[str, tuple[tuple[str, Any], ...]], dict[str, Any]]
#: parameters (each with the part of its expression that reads there) by the key they read
_Parts = dict[str, tuple[tuple[SearchParam, Evaluator], ...]]
#: when a parameter evaluated on the whole resource can give a value: for some clause,
#: the resource holds one key of each of its sets (None: always evaluate it)
_Needs = tuple[tuple[frozenset[str], ...], ...] | None
#: a parameter evaluated on the whole resource, when it can give a value, and the
#: top-level keys it reads (all of its ``_Needs``; empty when those are not known)
_Whole = tuple[SearchParam, _Needs, tuple[str, ...]]
#: the parameters split by top-level key, and those evaluated on the whole resource
_Plan = tuple[_Parts, tuple[_Whole, ...]]
#: a reference to a resource of this server by type and id, as the access log's entities
#: and most subjects are: their rows differ only by the id (see ``_template``)
_LOCAL_REFERENCE = re.compile(r"([A-Z][A-Za-z]{0,63})/([A-Za-z0-9\-.]{1,64})")
#: the id a reference's template rows are worked out with, then replaced by the real one
_TEMPLATE_ID = "eigendossier-template-id"
#: a template's rows, each with where its id is (the index in its identity) or None
_Template = tuple[tuple[_Found, int | None], ...]
_SIMPLE_TOKENS = {"code", "string", "id", "uri", "canonical", "boolean", "url", "oid", "uuid"}
#: Per type, the parameters whose rows are stored once per kind of resource, not once per
#: resource (ADR 0041): the values an access-log entry shares with most others, about
#: fourteen rows of its seventeen. The kind's rows lie in the index tables under the
#: kind's key (``kind_key``), and the resource's ``kind`` row names that key. Tokens and
#: URIs only, none of Resource's own (``_tag``, ``_security``: searched across types, and
#: by the access filter), nor a value that seldom repeats (an address, a name).
KIND_PARAMS: Mapping[str, frozenset[str]] = {
    "AuditEvent": frozenset(
        {
            "type",
            "subtype",
            "action",
            "outcome",
            "site",
            "entity-type",
            "entity-role",
            "agent-role",
            "altid",
            "policy",
        }
    ),
}
_KIND_TABLES = frozenset({"token", "uri"})
#: Per type, the reference parameters whose rows a resource naming many records stores as a
#: set, shared by every resource naming the same records (ADR 0043): the records an
#: access-log entry of a search disclosed, fifty at most, the same at each repetition of
#: the search while the dossier stands still (a GP system polling its patients' plans). A
#: set is a kind of its own (the same keys, tables and ``kind`` rows as ADR 0041's), beside
#: the resource's kind of repeating values.
SET_PARAMS: Mapping[str, frozenset[str]] = {"AuditEvent": frozenset({"entity"})}
#: the fewest rows that make a set: a resource naming fewer keeps them as its own (a read's
#: entry names one record, which would make a set per record read)
SET_FEWEST = 8
#: the rows of kinds a process keeps at hand, in all (then it works them out again): a
#: kind of repeating values has about a dozen, a set up to fifty-one
_KIND_ROWS_KEPT = 32768


def kinded(resource_type: str, code: str) -> bool:
    """Whether the rows of ``code`` (``identifier:of-type`` counts as ``identifier``) on
    ``resource_type`` may be stored per kind (:data:`KIND_PARAMS`) or per set
    (:data:`SET_PARAMS`): whoever reads them reads the kinds' rows too."""
    name = code.partition(":")[0]
    return any(name in params.get(resource_type, ()) for params in (KIND_PARAMS, SET_PARAMS))


def kind_key(resource_type: str, identities: list[bytes]) -> int:
    """The key of the kind whose rows have these identities (each its JSON): below zero,
    where no resource's key is, and the same in every process for the same rows. A 62-bit
    digest: two different kinds share one with odds of one in 10^7 at a million kinds."""
    digest = hashlib.blake2b(resource_type.encode(), digest_size=8)
    for identity in sorted(identities):
        digest.update(b"\n")
        digest.update(identity)
    return -(int.from_bytes(digest.digest(), "big") & ((1 << 62) - 1)) - 1


def _memo_key(value: Any, limit: int) -> bytes | None:
    """``value``'s JSON, by which its rows are remembered; None when it has none (a value
    ``orjson`` cannot write) or is longer than ``limit`` bytes: worked out each time."""
    try:
        blob = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return None
    return blob if len(blob) <= limit else None


def _key_of(rows: IndexRows) -> int:
    """The key of the kind whose rows (:meth:`Extractor.kind_rows`) these are."""
    return int(rows["kind"][0]["kind"])


@functools.lru_cache(maxsize=4096)  # codings' displays and names repeat: the same few texts
def normalise(text: str) -> str:
    """Case- and accent-insensitive form of a string, for string search."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))[:_KEY]


def split_reference(reference: str, base_url: str) -> tuple[str | None, str | None, str | None]:
    """(type, id, url) of a reference: a local one has type and id; another server's has url."""
    local = reference
    if base_url and reference.startswith(base_url.rstrip("/") + "/"):
        local = reference[len(base_url.rstrip("/")) + 1 :]
    if "://" in local or local.startswith(("urn:", "#")):
        parts = local.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        target_type = parts[-2] if len(parts) >= 2 and parts[-2][:1].isupper() else None
        return target_type, None, local[:512]
    parts = local.split("/")
    if len(parts) >= 2:
        return parts[0], parts[1], None
    return None, None, local[:512]


class Extractor:
    """Extract the index rows and patient compartment of resources of the served types."""

    def __init__(self, registry: Registry, base_url: str) -> None:
        self.registry = registry
        self.base_url = base_url
        self._plans: dict[str, _Plan] = {}
        self._subplans: dict[tuple[str, str], _Parts | None] = {}
        #: the rows of the kinds met lately, by key (see :meth:`kind_rows`) and by the
        #: identities of their rows (see :meth:`_kind_of`)
        self._kinds: dict[int | tuple[Any, ...], IndexRows] = {}
        self._kept_rows = 0

    def rows(self, pk: int, resource: dict[str, Any]) -> tuple[IndexRows, set[str]]:
        """Index rows by parameter type, and the ids of the patients whose compartment
        holds it. A type with parameters stored per kind (:data:`KIND_PARAMS`) has, instead
        of their rows, one ``kind`` row naming its kind, and a resource naming many records
        (:data:`SET_PARAMS`) one naming their set; :meth:`kind_rows` gives a kind's."""
        out, patients, _ = self._extract(pk, resource)
        return out, patients

    def kind_rows(self, kind: int, resource: dict[str, Any]) -> IndexRows:
        """The rows of ``kind``, a kind of ``resource`` (:meth:`rows` named it): the
        kind's rows under its key, and its own ``kind`` row, which says they are stored."""
        rows = self._kinds.get(kind)
        if rows is None:  # not kept any more: the resource's rows tell them again
            rows = next((r for r in self._extract(0, resource)[2] if _key_of(r) == kind), None)
        if rows is None or _key_of(rows) != kind:
            raise ValueError("the resource is not of this kind")
        return rows

    def _extract(
        self, pk: int, resource: dict[str, Any]
    ) -> tuple[IndexRows, set[str], list[IndexRows]]:
        """:meth:`rows`, and the rows of the resource's kinds (none, its kind of repeating
        values, its set of records named, or both)."""
        resource_type = resource["resourceType"]
        by_key, whole = self._plan(resource_type)
        found: list[_Found] = []
        for key in by_key:
            raw = resource.get(key)
            if isinstance(raw, list | dict):
                found.extend(self._value_rows(resource_type, key, raw))
            elif raw is not None:
                found.extend(self._item_rows(resource_type, key, raw))
        present = resource.keys()
        for param, needs, keys in whole:
            if needs is None:
                found.extend(_keyed(param, self._rows_for(param, param.evaluate(resource))))
            elif _may_give(needs, present):
                found.extend(self._whole_rows(param, keys, resource))
        own: list[_Found] = []
        shared: list[_Found] = []
        named: list[_Found] = []
        kinds = KIND_PARAMS.get(resource_type)  # once: most types have none
        sets = SET_PARAMS.get(resource_type)
        # one row per distinct value: searches test presence (IN, EXISTS, a distinct
        # count), so a repeated value (the entity type of fifty entities of an access-log
        # entry) adds nothing but writes; rows of one identity are equal, so any will do
        for identity, row in dict(found).items():
            table = identity[0]
            if kinds and table in _KIND_TABLES and row["param"].partition(":")[0] in kinds:
                shared.append((identity, row))
            elif sets and table == "reference" and row["param"] in sets:
                named.append((identity, row))
            else:
                own.append((identity, row))
        if len(named) < SET_FEWEST:  # too few to share: the resource's own
            own += named
            named = []
        out: IndexRows = {}
        for (table, _), row in own:
            out.setdefault(table, []).append({**row, "res_pk": pk, "res_type": resource_type})
        patients = self._patients(resource_type, resource, out)
        own_kinds = [self._kind_of(resource_type, rows) for rows in (shared, named) if rows]
        if own_kinds:
            out["kind"] = [
                {"res_pk": pk, "res_type": resource_type, "kind": _key_of(rows)}
                for rows in own_kinds
            ]
        return out, patients, own_kinds

    def _kind_of(self, resource_type: str, shared: list[_Found]) -> IndexRows:
        """The rows of the kind whose rows are ``shared``: kept by their identities, in the
        order found (entries made alike find them in one order)."""
        identities = tuple(identity for identity, _ in shared)
        rows = self._kinds.get(identities)
        if rows is not None:
            return rows
        kind = kind_key(resource_type, [orjson.dumps(identity) for identity in identities])
        rows = {"kind": [{"res_pk": kind, "res_type": resource_type, "kind": kind}]}
        for (table, _), row in shared:
            rows.setdefault(table, []).append({**row, "res_pk": kind, "res_type": resource_type})
        self._kept_rows += len(shared)
        if self._kept_rows > _KIND_ROWS_KEPT:
            self._kinds = {}  # a new dict: a thread reading the old one is not disturbed
            self._kept_rows = len(shared)
        self._kinds[identities] = self._kinds[kind] = rows
        return rows

    def _plan(self, resource_type: str) -> _Plan:
        """The type's indexed parameters split by the top-level key each part reads, and
        those evaluated on the whole resource (expressions that are not plain paths)."""
        plan = self._plans.get(resource_type)
        if plan is None:
            by_key: dict[str, list[tuple[SearchParam, Evaluator]]] = {}
            whole: list[SearchParam] = []
            for param in self.registry.indexed(resource_type):
                parts = split_by_key(param.evaluate)
                if parts is None:
                    whole.append(param)
                    continue
                for key, evaluate in parts.items():
                    by_key.setdefault(key, []).append((param, evaluate))
            plan = (
                {k: tuple(v) for k, v in by_key.items()},
                tuple(_whole(param) for param in whole),
            )
            self._plans[resource_type] = plan
        return plan

    def _subplan(self, resource_type: str, key: str) -> _Parts | None:
        """The parameters read under ``key`` split again by the key of that element each
        reads next; None unless every one of them can be (see ``split_by_second_key``)."""
        if (resource_type, key) not in self._subplans:
            parts: dict[str, list[tuple[SearchParam, Evaluator]]] | None = {}
            for param, evaluate in self._plan(resource_type)[0][key]:
                split = split_by_second_key(evaluate, key)
                if split is None or parts is None:
                    parts = None
                    break
                for sub, part in split.items():
                    parts.setdefault(sub, []).append((param, part))
            self._subplans[(resource_type, key)] = (
                None if parts is None else {sub: tuple(v) for sub, v in parts.items()}
            )
        return self._subplans[(resource_type, key)]

    def _value_rows(
        self, resource_type: str, key: str, value: list[Any] | dict[str, Any]
    ) -> tuple[_Found, ...]:
        """The rows of the whole value under ``key`` (an element, or an array), remembered
        by its JSON: most repeat whole from resource to resource (an access-log entry's
        agents, source and type; the records a repeated search disclosed, fifty entities
        whose parts would each be looked up again), and one lookup stands for the many of
        its items and their parts (ADR 0049)."""
        blob = _memo_key(value, _VALUE_MEMO_BYTES)
        if blob is None:
            return self._evaluate_value(resource_type, key, value)
        return self._remembered_value(resource_type, key, blob)

    @functools.lru_cache(maxsize=256)  # noqa: B019 (the extractor lives as long as the app)
    def _remembered_value(self, resource_type: str, key: str, blob: bytes) -> tuple[_Found, ...]:
        return self._evaluate_value(resource_type, key, orjson.loads(blob))

    def _evaluate_value(
        self, resource_type: str, key: str, value: list[Any] | dict[str, Any]
    ) -> tuple[_Found, ...]:
        found: list[_Found] = []
        for item in value if isinstance(value, list) else (value,):
            if item is not None:
                found.extend(self._item_rows(resource_type, key, item))
        return tuple(found)

    def _item_rows(self, resource_type: str, key: str, item: Any) -> tuple[_Found, ...]:
        """The rows of one item under ``key`` (an element, or one entry of an array), worked
        out per entry of the element where every parameter reads one of its keys (an
        access-log entity: its ``what`` differs from entry to entry, its ``type`` and
        ``role`` repeat), else for the item whole."""
        parts = self._subplan(resource_type, key) if isinstance(item, dict) else None
        if parts is None:
            return self._part_rows(resource_type, key, "", item)
        found: list[_Found] = []
        for sub, value in item.items():
            if sub in parts and value is not None:
                found.extend(self._part_rows(resource_type, key, sub, value))
        return tuple(found)

    def _part_rows(self, resource_type: str, key: str, sub: str, value: Any) -> tuple[_Found, ...]:
        """The rows of ``value``, the item under ``key`` (``sub`` empty) or its entry
        ``sub``: remembered by its JSON, since these repeat from resource to resource (the
        codes of Observations, the agents and entities of access-log entries). A local
        reference alone (``{"reference": "Observation/7"}``) takes the rows of its type's
        template, with its id put in: each names another record, so none would repeat."""
        if type(value) is dict and len(value) == 1:
            found = self._reference_rows(resource_type, key, sub, value)
            if found is not None:
                return found
        blob = _memo_key(value, _MEMO_BYTES)
        if blob is None:
            return self._evaluate_part(resource_type, key, sub, value)
        return self._remembered(resource_type, key, sub, blob)

    def _reference_rows(
        self, resource_type: str, key: str, sub: str, value: dict[str, Any]
    ) -> tuple[_Found, ...] | None:
        reference = value.get("reference")
        match = _LOCAL_REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match is None:
            return None
        template = self._template(resource_type, key, sub, match[1])
        if template is None:
            return None
        target_id = match[2]
        found: list[_Found] = []
        for (identity, row), at in template:
            if at is None:
                found.append((identity, row))
                continue
            items = list(identity[1])
            items[at] = ("target_id", target_id)
            found.append(((identity[0], tuple(items)), {**row, "target_id": target_id}))
        return tuple(found)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (the extractor lives as long as the app)
    def _template(
        self, resource_type: str, key: str, sub: str, target_type: str
    ) -> _Template | None:
        """The rows of a reference to a ``target_type`` with the template id, each with
        where that id is in it; None when the rows may depend on the id otherwise than as
        a reference row's ``target_id`` (an expression that compares values, or the id in
        another column: a composite's), so that each such reference is worked out whole."""
        if sub:
            evaluators = (self._subplan(resource_type, key) or {})[sub]
        else:
            evaluators = self._plan(resource_type)[0][key]
        if any(compares_values(evaluate) for _, evaluate in evaluators):
            return None
        value = {"reference": f"{target_type}/{_TEMPLATE_ID}"}
        template: list[tuple[_Found, int | None]] = []
        for (table, items), row in self._evaluate_part(resource_type, key, sub, value):
            at = None
            for n, (column, cell) in enumerate(items):
                if cell != _TEMPLATE_ID and not (isinstance(cell, str) and _TEMPLATE_ID in cell):
                    continue
                if table != "reference" or column != "target_id":
                    return None
                at = n
            template.append((((table, items), row), at))
        return tuple(template)

    def _whole_rows(
        self, param: SearchParam, keys: tuple[str, ...], resource: dict[str, Any]
    ) -> tuple[_Found, ...]:
        """The rows of a parameter that reads only ``keys`` of the resource: remembered by
        their JSON (an Observation's code and value repeat from resource to resource)."""
        part = {key: resource[key] for key in keys if key in resource}
        blob = _memo_key(part, _MEMO_BYTES)
        if blob is None:
            return self._evaluate_whole(param, part)
        return self._remembered_whole(param, blob)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (the extractor lives as long as the app)
    def _remembered_whole(self, param: SearchParam, blob: bytes) -> tuple[_Found, ...]:
        return self._evaluate_whole(param, orjson.loads(blob))

    def _evaluate_whole(self, param: SearchParam, part: dict[str, Any]) -> tuple[_Found, ...]:
        alone = {"resourceType": param.resource_type, **part}
        return tuple(_keyed(param, self._rows_for(param, param.evaluate(alone))))

    @functools.lru_cache(maxsize=16384)  # noqa: B019 (the extractor lives as long as the app)
    def _remembered(
        self, resource_type: str, key: str, sub: str, blob: bytes
    ) -> tuple[_Found, ...]:
        return self._evaluate_part(resource_type, key, sub, orjson.loads(blob))

    def _evaluate_part(
        self, resource_type: str, key: str, sub: str, value: Any
    ) -> tuple[_Found, ...]:
        # an element alone in a list of one: every step maps items one by one, so a single
        # value and an array's entry give the same rows (and an entry of the element alone
        # the rows the element's parameters take from that entry)
        if sub:
            alone = {"resourceType": resource_type, key: [{sub: value}]}
            evaluators = (self._subplan(resource_type, key) or {})[sub]
        else:
            alone = {"resourceType": resource_type, key: [value]}
            evaluators = self._plan(resource_type)[0][key]
        found: list[_Found] = []
        for param, evaluate in evaluators:
            found.extend(_keyed(param, self._rows_for(param, evaluate(alone))))
        return tuple(found)

    def _patients(self, resource_type: str, resource: dict[str, Any], rows: IndexRows) -> set[str]:
        if resource_type == "Patient":
            return {str(resource["id"])}
        params = set(self.registry.compartment.get(resource_type, ()))
        return {
            r["target_id"]
            for r in rows.get("reference", [])
            if r["param"] in params and r["target_type"] == "Patient" and r["target_id"]
        }

    def households(self, resource_type: str, rows: IndexRows) -> set[str]:
        """The ids of the Groups (households) whose members' compartments also hold it."""
        params = self.registry.household.get(resource_type, frozenset())
        return {
            r["target_id"]
            for r in rows.get("reference", [])
            if r["param"] in params and r["target_type"] == "Group" and r["target_id"]
        }

    def _rows_for(self, param: SearchParam, values: list[Typed]) -> Iterator[dict[str, Any]]:
        handler = getattr(self, f"_{param.type}")
        for typed in values:
            yield from handler(param, typed)

    # -- per parameter type -----------------------------------------------------------

    def _token(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        value, kind = typed.value, typed.type
        if kind in _SIMPLE_TOKENS or not isinstance(value, dict):
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            yield {"system": None, "code": text[:_KEY], "text": None}
        elif kind == "CodeableConcept":
            label = value.get("text")
            for coding in value.get("coding", []):
                yield _coding_row(coding, label)
            if label and not value.get("coding"):
                yield {"system": None, "code": None, "text": normalise(label)}
        elif kind == "Coding":
            yield _coding_row(value, None)
        elif kind == "Identifier":
            identifier = str(value.get("value", ""))[:_KEY] or None
            yield {
                "system": value.get("system"),
                "code": identifier,
                "text": normalise(value["type"]["text"])
                if "text" in value.get("type", {})
                else None,
            }
            for coding in value.get("type", {}).get("coding", []):
                yield {
                    "param": f"{param.code}:of-type",
                    "system": coding.get("system"),
                    "code": f"{coding.get('code')}|{identifier}"[:_KEY],
                    "text": None,
                }
        elif kind == "ContactPoint" and "value" in value:
            yield {"system": None, "code": str(value["value"])[:_KEY], "text": None}

    def _string(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        value = typed.value
        texts: list[str] = []
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for part in _STRING_PARTS.get(typed.type, ()):
                item = value.get(part)
                texts.extend(item if isinstance(item, list) else [item] if item else [])
        for text in texts:
            if isinstance(text, str) and text:
                yield {"value_norm": normalise(text), "value_exact": text[:_KEY]}

    def _date(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        value = typed.value
        try:
            if isinstance(value, str):
                low, high = parse_date_range(value)
                yield {"low": low, "high": high}
            elif typed.type == "Period" and isinstance(value, dict):
                low = parse_date_range(value["start"])[0] if "start" in value else MIN
                high = parse_date_range(value["end"])[1] if "end" in value else MAX
                yield {"low": low, "high": high}
            elif typed.type == "Timing" and isinstance(value, dict):
                ranges = [parse_date_range(e) for e in value.get("event", [])]
                bounds = value.get("repeat", {}).get("boundsPeriod")
                if bounds:
                    ranges.append(
                        (
                            parse_date_range(bounds["start"])[0] if "start" in bounds else MIN,
                            parse_date_range(bounds["end"])[1] if "end" in bounds else MAX,
                        )
                    )
                if ranges:
                    yield {"low": min(r[0] for r in ranges), "high": max(r[1] for r in ranges)}
        except ValueError:
            return

    def _reference(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        value = typed.value
        reference = value.get("reference") if isinstance(value, dict) else value
        if not isinstance(reference, str) or reference.startswith("#"):
            return
        target_type, target_id, url = split_reference(reference, self.base_url)
        yield {"target_type": target_type, "target_id": target_id, "url": url}

    def _quantity(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        value = typed.value
        if isinstance(value, dict) and isinstance(value.get("value"), int | float):
            code = value.get("code") or value.get("unit") or value.get("currency")
            yield {"value": float(value["value"]), "system": value.get("system"), "code": code}

    def _number(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        if isinstance(typed.value, int | float) and not isinstance(typed.value, bool):
            yield {"value": float(typed.value)}

    def _composite(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        """Pairs of (token, value) found on the same item, e.g. one Observation.component."""
        (_, first), (second_type, second) = param.components
        firsts = [
            row
            for t in first([typed])
            for row in self._token(param, t)
            if "param" not in row and row["code"] is not None
        ]
        if not firsts:
            return
        handler = getattr(self, f"_{second_type}")
        seconds = [
            _component_value(second_type, row)
            for t in second([typed])
            for row in handler(param, t)
            if "param" not in row
        ]
        for row in firsts:
            for value in seconds:
                yield {"system": row["system"], "code": row["code"], **value}

    def _uri(self, param: SearchParam, typed: Typed) -> Iterator[dict[str, Any]]:
        if isinstance(typed.value, str):
            yield {"value": typed.value[:512]}


def _whole(param: SearchParam) -> _Whole:
    needs = _needs(param)
    keys = () if needs is None else sorted({k for clause in needs for ks in clause for k in ks})
    return param, needs, tuple(keys)


def _may_give(needs: tuple[tuple[frozenset[str], ...], ...], present: KeysView[str]) -> bool:
    """Whether a resource holding the keys ``present`` meets one clause of ``needs``."""
    for clause in needs:
        for keys in clause:
            if present.isdisjoint(keys):
                break
        else:
            return True
    return False


def _needs(param: SearchParam) -> _Needs:
    """The keys a parameter evaluated on the whole resource starts from (see ``_Needs``):
    the composites of an Observation (``code-value-date`` and its kin) read the resource
    itself and give a value only where it holds both their components' keys; most
    Observations hold one kind of value, so most of these are nothing to evaluate."""
    branches = first_keys(param.evaluate)
    if branches is None or any(keys is None for keys in branches):
        return None
    clauses: list[tuple[frozenset[str], ...]] = []
    for keys in branches:
        assert keys is not None
        if keys:
            clauses.append((keys,))
            continue
        if param.type != "composite":  # a value of the resource itself
            return None
        union: list[frozenset[str]] = []
        for _, evaluate in param.components:
            component = first_keys(evaluate)
            if component is None or not component or not all(component):
                return None  # unknown, or a component that is the resource itself
            union.append(frozenset(key for keys in component if keys for key in keys))
        clauses.append(tuple(union))
    return tuple(clauses)


def _component_value(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """A component's index row in the v_* columns of ``search_composite``."""
    value: dict[str, Any] = {
        "v_system": None,
        "v_code": None,
        "v_value": None,
        "v_low": None,
        "v_high": None,
    }
    if kind == "token":
        value.update(v_system=row["system"], v_code=row["code"])
    elif kind == "quantity":
        value.update(v_value=row["value"], v_system=row["system"], v_code=row["code"])
    elif kind == "date":
        value.update(v_low=row["low"], v_high=row["high"])
    elif kind == "string":
        value.update(v_code=row["value_norm"])
    elif kind == "reference":
        value.update(v_system=row["target_type"], v_code=row["target_id"] or row["url"])
    else:
        value.update(v_code=row["value"])
    return value


def _coding_row(coding: dict[str, Any], label: str | None) -> dict[str, Any]:
    text = label or coding.get("display")
    code = coding.get("code")
    return {
        "system": coding.get("system"),
        "code": str(code)[:_KEY] if code is not None else None,
        "text": normalise(text) if text else None,
    }


def _keyed(param: SearchParam, rows: Iterator[dict[str, Any]]) -> Iterator[_Found]:
    for row in rows:
        row.setdefault("param", param.code)
        yield (param.type, tuple(sorted(row.items()))), row
