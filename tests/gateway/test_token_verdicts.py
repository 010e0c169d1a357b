"""A verified token is kept while the access epoch stands still, and no longer (ADR 0016).

Each test uses a token on the API first (so its verdict is kept), then ends it the way an
operator or a client does, and the very next request is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from gateway.http.tokens import Contexts, VerifiedTokens
from gateway.interactions.model import FhirRequest
from gateway.interactions.routes import route_of
from gateway.search.extract import Extractor
from gateway.search.registry import Registry
from gateway.store.engine import make_engine
from gateway.store.repository import Store
from gateway.store.schema import access_epoch
from mappings.core.clock import SystemClock
from mappings.core.definitions import load_definitions
from mappings.core.errors import NotFound
from tests.smart import account, bearer, login, origin


def _patient(client: httpx.Client) -> None:
    resource = {"resourceType": "Patient", "id": "anna", "name": [{"family": "Jansen"}]}
    assert client.put("Patient/anna", json=resource).status_code in (200, 201)


@pytest.fixture()
def anna(secure: dict[str, Any], client: httpx.Client) -> dict[str, Any]:
    _patient(client)
    account(secure["security"], "anna", "patient", "Patient/anna")
    token = login(secure["base"], secure["security"], "anna")
    headers = bearer(token["access_token"])
    for _ in range(2):  # verified, then served from what the process kept
        assert httpx.get(f"{secure['base']}/Patient/anna", headers=headers).status_code == 200
    return {"token": token, "headers": headers}


def test_a_revoked_token_is_refused_at_the_next_request(
    secure: dict[str, Any], anna: dict[str, Any]
) -> None:
    base, token = secure["base"], anna["token"]
    revoked = httpx.post(
        f"{origin(base)}/oauth/revoke",
        data={"token": token["access_token"], "client_id": token["client_id"]},
    )
    assert revoked.status_code == 200
    assert httpx.get(f"{base}/Patient/anna", headers=anna["headers"]).status_code == 401


def test_a_disabled_app_and_a_removed_login_end_their_tokens_at_once(
    secure: dict[str, Any], anna: dict[str, Any]
) -> None:
    base, security = secure["base"], secure["security"]
    app = security.store.app(anna["token"]["client_id"])
    assert app is not None
    security.store.save_app(dataclasses.replace(app, active=False))
    assert httpx.get(f"{base}/Patient/anna", headers=anna["headers"]).status_code == 401
    security.store.save_app(app)  # enabled again: the token is good again
    assert httpx.get(f"{base}/Patient/anna", headers=anna["headers"]).status_code == 200
    assert security.store.remove_account("anna")
    assert httpx.get(f"{base}/Patient/anna", headers=anna["headers"]).status_code == 401


def test_kept_verdicts_follow_the_epoch_the_expiry_and_the_bound() -> None:
    kept = VerifiedTokens(size=2)
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    claims = {"exp": int(now.timestamp()) + 60, "sub": "anna"}
    kept.put("token-a", 7, claims)
    assert kept.get("token-a", 7, now) == claims
    assert kept.get("token-a", 8, now) is None  # the epoch moved: verify again
    assert kept.get("token-a", 7, now) is None  # and the old verdict is gone
    kept.put("token-a", 7, claims)
    assert kept.get("token-a", 7, now + dt.timedelta(seconds=61)) is None  # expired
    kept.put("token-a", None, claims)  # no epoch counter: nothing kept
    assert kept.get("token-a", None, now) is None
    for name in ("a", "b", "c"):
        kept.put(name, 1, claims)
    assert kept.get("a", 1, now) is None and kept.get("c", 1, now) == claims  # at most two


def test_an_access_context_serves_its_verdicts_claims_and_address_only() -> None:
    """ADR 0031: the context made from a kept verdict's claims and an address is made
    once; another address, or the claims of a verdict taken again (equal, but another
    object: another epoch, a new verification), make one anew."""
    contexts = Contexts(size=3)
    made: list[tuple[dict[str, Any], str | None]] = []

    def make(claims: dict[str, Any], address: str | None) -> Any:
        made.append((claims, address))
        return ("context", claims["sub"], address, len(made))

    claims = {"sub": "gp", "scope": "system/*.rs"}
    first = contexts.of(claims, "10.0.0.1", make)
    assert contexts.of(claims, "10.0.0.1", make) is first
    assert len(made) == 1
    assert contexts.of(claims, "10.0.0.2", make) != first  # the address is in the log entry
    again = dict(claims)  # the same token verified again: equal claims, another verdict
    assert contexts.of(again, "10.0.0.1", make) is not first
    assert len(made) == 3
    contexts.of({"sub": "nurse"}, None, make)  # a fourth: over the bound, all forgotten
    assert contexts.of(claims, "10.0.0.1", make) is not first
    assert len(made) == 5


def test_a_request_is_matched_to_its_route_once() -> None:
    request = FhirRequest("GET", "Observation/o1")
    route, groups = route_of(request)
    assert (route.name, groups) == ("read", {"type": "Observation", "id": "o1"})
    assert route_of(request)[0] is route and route_of(request)[1] is groups
    moved = dataclasses.replace(request, path="Observation")  # a changed path: matched anew
    assert moved.matched is None and route_of(moved)[0].name == "search-type"
    with pytest.raises(NotFound):
        route_of(FhirRequest("GET", "Nonsense/x/y/z/w"))


def test_the_epoch_read_at_the_edge_is_the_one_sessions_see(services: Any) -> None:
    """The edge reads the access epoch on a raw pooled connection; it must agree with a
    session's read, and follow every raise of it at once."""
    store = services.store
    before = store.access_epoch()
    with store.read() as session:
        assert session.access_epoch() == before
    with store.engine.begin() as connection:
        connection.execute(access_epoch.update().values(n=access_epoch.c.n + 1))
    assert store.access_epoch() == before + 1


def test_a_failing_epoch_read_raises_as_sqlalchemy_does(tmp_path: Any) -> None:
    """A database without the counter: the same OperationalError SQLAlchemy would raise
    (the edge answers 500 with a correlation id), and the pool stays usable."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    store = Store(engine, Extractor(Registry(load_definitions()), ""), SystemClock())
    try:
        for _ in range(3):
            with pytest.raises(OperationalError):
                store.access_epoch()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        store.dispose()


def _where_callers_ran(endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """'loop' or 'thread' for every authorized request the endpoint serves from now on."""
    seen: list[str] = []
    build = endpoint._caller
    # the epoch the process saw last is an earlier test's: a read by id that took it
    # would find it moved and run again (ADR 0035), and make a caller twice
    endpoint.seen_epoch = None

    def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            seen.append("loop")
        except RuntimeError:
            seen.append("thread")
        return build(*args, **kwargs)

    monkeypatch.setattr(endpoint, "_caller", recording)
    return seen


def test_a_read_by_a_kept_token_is_served_on_the_loop_after_its_log_entry(
    secure: dict[str, Any], client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read whose token's verdict is kept runs on the event loop (ADR 0020; on PostgreSQL
    its statement awaited there, ADR 0039, ADR 0054); its access-log entry is committed
    before the response leaves, as on every path."""
    base, endpoint = secure["base"], secure["endpoint"]
    _patient(client)
    account(secure["security"], "anna", "patient", "Patient/anna")
    headers = bearer(login(base, secure["security"], "anna")["access_token"])
    seen = _where_callers_ran(endpoint, monkeypatch)
    for reads in range(1, 4):
        assert httpx.get(f"{base}/Patient/anna", headers=headers).status_code == 200
        log = httpx.get(
            f"{base}/AuditEvent",
            params={"entity": "Patient/anna", "subtype": "read", "_summary": "count"},
            headers=headers,
        )
        assert log.status_code == 200
        assert log.json()["total"] == reads  # this read's entry was there before its answer
    # the token verified first, in a thread; then kept: the reads on the loop, the searches
    # of the log in threads. A read on the loop runs once, on PostgreSQL too: it waits for
    # its statement in its greenlet (ADR 0054)
    assert seen == ["thread", "thread", *["loop", "thread"] * 2]


def test_each_request_takes_its_lane(
    secure: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of one resource on the loop (on PostgreSQL once the process knows an access
    epoch, ADR 0039), searches of one type too (on PostgreSQL those of one statement, ADR
    0044), other reads on the readers' threads, writes on the thread pool (ADR
    0020, ADR 0021, ADR 0022)."""
    endpoint = secure["endpoint"]
    sqlite = secure["services"].store.engine.dialect.name == "sqlite"

    def lane(method: str, path: str, body: Any = None) -> str:
        return str(endpoint._lane(FhirRequest(method, path, [], {}, body)))

    monkeypatch.setattr(endpoint, "seen_epoch", None)  # no epoch read yet in this process
    assert lane("GET", "Patient/anna") == lane("GET", "Patient") == ("loop" if sqlite else "read")
    monkeypatch.setattr(endpoint, "seen_epoch", 1)
    assert lane("GET", "Patient/anna") == lane("HEAD", "Patient/anna/_history/2") == "loop"
    assert lane("GET", "Patient") == "loop"
    searching = endpoint._lane(FhirRequest("GET", "Patient", [("_count", "100")], {}, None))
    assert searching == "loop"
    by_name = endpoint._lane(FhirRequest("GET", "Patient", [("_sort", "name")], {}, None))
    assert by_name == "loop"
    counted = endpoint._lane(FhirRequest("GET", "Patient", [("_summary", "count")], {}, None))
    assert counted == ("loop" if sqlite else "read")  # on PostgreSQL a count alone: a thread
    for query in ([("_count", "101")], [("_include", "Patient:organization")]):
        large = endpoint._lane(FhirRequest("GET", "Patient", query, {}, None))
        assert large == "read", query  # a page that may be large: never on the loop
    for method, path in (
        ("GET", "AuditEvent"),  # a search of the log indexes what waits first
        ("GET", "Patient/anna/_history"),
        ("GET", "Patient/anna/$summary"),
        ("GET", "metadata"),
        ("GET", "AuditEvent/a1"),  # a read of the log indexes what waits first
        ("GET", "No/such/path/here/at/all"),
    ):
        assert lane(method, path) == "read", (method, path)
    assert lane("POST", "Observation/_search", body={}) == "read"
    assert lane("GET", "Patient/anna", body={"resourceType": "Patient"}) == "read"
    for method, path in (("DELETE", "Patient/anna"), ("PUT", "Patient/anna"), ("POST", "")):
        assert lane(method, path) == "write", (method, path)
    assert endpoint.readers.size == (2 if sqlite else 40)
