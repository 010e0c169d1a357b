"""Notifying GP systems: the outbox, the worker, consent at the moment of delivery.

A real HTTP receiver (a small app on a free loopback port) plays the GP system; the
gateway is the secured test server; the worker is driven round by round.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.delivery import DeliverySettings, Worker, dead_rows, outbox_status, retry_dead
from gateway.interactions.model import Services
from gateway.loading import load
from gateway.store.schema import resources
from mappings.care.demo import demo_dossier
from mappings.nl.identifiers import AGB
from tests.conftest import _free_port, running
from tests.consents import ACCESS, actor, classes, privacy_consent
from tests.smart import account, backend_app, backend_token, bearer, login

GP_SCOPES = "system/*.rs system/Subscription.cru"


class Receiver:
    """What the GP system received; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0  # seconds before it answers
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    async def notify(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(status_code=self.status)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    app = Starlette(routes=[Route("/notify", found.notify, methods=["POST"])])
    with running(app, found.port):
        yield found


class MovableClock:
    """The real time, moved on by ``ahead`` (the store writes with the real clock)."""

    def __init__(self) -> None:
        self.ahead = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.ahead


@pytest.fixture()
def world(secure: dict[str, Any], services: Services) -> Iterator[dict[str, Any]]:
    load(services, demo_dossier(dt.date.today()), "test: the demo")
    base, security = secure["base"], secure["security"]
    account(security, "anna", "patient", "Patient/anna")
    anna = bearer(login(base, security, "anna")["access_token"])
    gp_id, gp_key = backend_app(security, organization=f"{AGB}|01234567", scope=GP_SCOPES)
    gp = bearer(backend_token(base, gp_id, gp_key, GP_SCOPES).json()["access_token"])
    clock = MovableClock()
    fast = DeliverySettings(first_delay=dt.timedelta(0), max_attempts=3)
    worker = Worker(
        dataclasses.replace(secure["services"], clock=clock), fast, apps=security.store.app
    )
    yield {"base": base, "anna": anna, "gp": gp, "worker": worker, "clock": clock}
    worker.close()


def _grant(world: dict[str, Any]) -> None:
    provision = {
        "type": "permit",
        "actor": [actor("Organization/gp")],
        "action": [ACCESS],
        "class": classes("Patient", "CarePlan"),
    }
    consent = privacy_consent("gp-plans", "anna", provision)
    put = httpx.put(f"{world['base']}/Consent/gp-plans", json=consent, headers=world["anna"])
    assert put.status_code == 201, put.text


def _subscribe(
    world: dict[str, Any],
    endpoint: str,
    content: str = "full-resource",
    criteria: str = "CarePlan?subject=Patient/anna",
) -> str:
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "De huisarts wil weten wanneer het plan verandert",
        "criteria": criteria,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                        "valueCode": content,
                    }
                ]
            },
            "header": ["Authorization: Bearer gp-receiver-secret"],
        },
    }
    created = httpx.post(f"{world['base']}/Subscription", json=subscription, headers=world["gp"])
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _rounds(world: dict[str, Any], count: int = 3) -> None:
    for _ in range(count):
        world["worker"].run_once()


def _change_the_plan(services: Services, title: str) -> None:
    plan = next(r for r in demo_dossier(dt.date.today()) if r.get("id") == "krachtplan")
    load(services, [dict(plan, title=title)], "test: the team changes the plan")


def test_a_gp_is_notified_of_a_change_it_may_see_and_not_after_revocation(
    world: dict[str, Any], receiver: Receiver, services: Services
) -> None:
    _grant(world)
    sid = _subscribe(world, receiver.url)
    _rounds(world)
    handshake = receiver.requests.pop(0)
    assert handshake["headers"]["x-subscription-handshake"] == "true"
    active = httpx.get(f"{world['base']}/Subscription/{sid}", headers=world["gp"]).json()
    assert active["status"] == "active"
    _change_the_plan(services, "Grip op geld, post en huis")
    _rounds(world)
    (note,) = receiver.requests
    assert note["headers"]["authorization"] == "Bearer gp-receiver-secret"
    assert note["headers"]["idempotency-key"].startswith(f"notify:{sid}:CarePlan/krachtplan/")
    bundle = orjson.loads(note["body"])
    assert bundle["entry"][0]["resource"]["title"] == "Grip op geld, post en huis"
    log = httpx.get(
        f"{world['base']}/AuditEvent",
        params={"patient": "anna", "_count": "200"},
        headers=world["anna"],
    ).json()
    notified = [
        e["resource"]
        for e in log["entry"]
        if any(c.get("code") == "$notify" for c in e["resource"].get("subtype", []))
    ]
    assert len(notified) == 1
    assert (
        notified[0]["outcomeDesc"]
        == "notified GP system (01234567) of a change to CarePlan/krachtplan"
    )
    assert httpx.delete(f"{world['base']}/Consent/gp-plans", headers=world["anna"]).is_success
    _change_the_plan(services, "Na de intrekking")
    seen = httpx.get(f"{world['base']}/CarePlan/krachtplan", headers=world["gp"])
    assert seen.status_code == 404
    _rounds(world)
    keys = [r["headers"]["idempotency-key"] for r in receiver.requests]
    assert len(receiver.requests) == 1, keys  # the very next change sends nothing
    assert outbox_status(services)[("notify", "done")] == 2


def test_id_only_carries_no_content(
    world: dict[str, Any], receiver: Receiver, services: Services
) -> None:
    _grant(world)
    _subscribe(world, receiver.url, "id-only")
    _rounds(world)
    _change_the_plan(services, "Alleen het id")
    _rounds(world)
    body = orjson.loads(receiver.requests[-1]["body"])
    assert body["entry"][0]["fullUrl"].endswith("/CarePlan/krachtplan")
    assert "resource" not in body["entry"][0]


def test_an_endpoint_that_fails_is_retried_then_dead_and_the_subscription_in_error(
    world: dict[str, Any], receiver: Receiver, services: Services
) -> None:
    _grant(world)
    sid = _subscribe(world, receiver.url)
    _rounds(world)
    receiver.status = 500
    _change_the_plan(services, "Niemand thuis")
    for _ in range(4):
        world["clock"].ahead += dt.timedelta(hours=1)  # past every backoff
        _rounds(world, 1)
    attempts = [r for r in receiver.requests if "x-subscription-handshake" not in r["headers"]]
    assert len(attempts) == 3  # max_attempts, each with the same idempotency key
    assert len({r["headers"]["idempotency-key"] for r in attempts}) == 1
    (dead,) = dead_rows(services)
    assert "500" in str(dead[2])
    errored = httpx.get(f"{world['base']}/Subscription/{sid}", headers=world["gp"]).json()
    assert errored["status"] == "error" and "500" in errored["error"]
    assert retry_dead(services) == 1


def test_a_lease_that_runs_out_is_delivered_again_with_the_same_key(
    world: dict[str, Any], receiver: Receiver, services: Services
) -> None:
    _grant(world)
    _subscribe(world, receiver.url)
    _rounds(world)
    _change_the_plan(services, "Na een crash")
    worker = world["worker"]
    worker._fan_out(worker._claim(("change",)))  # the change became a notify row ...
    receiver.requests.clear()
    claimed = worker._claim(("notify",))  # ... which a worker takes, then dies with it
    assert len(claimed) == 1
    worker.run_once()
    assert receiver.requests == []  # leased: nobody else takes it
    world["clock"].ahead += dt.timedelta(minutes=5)  # the lease runs out
    worker.run_once()
    (note,) = receiver.requests
    assert note["headers"]["idempotency-key"] == claimed[0].key


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        ({"criteria": "Observation?code=x"}, 201, None),  # readable under system/*.rs
        ({"criteria": "Nonsense?x=1"}, 422, "served type"),
        ({"criteria": "CarePlan?unknownparam=1"}, 422, "criteria"),
        ({"channel": {"type": "email", "endpoint": "mailto:x@example.org"}}, 422, "rest-hook"),
        (
            {"channel": {"type": "rest-hook", "endpoint": "http://gp.example.org/hook"}},
            422,
            "https",
        ),
        ({"status": "active"}, 422, "requested"),
    ],
)
def test_what_a_subscription_may_not_say(
    world: dict[str, Any], change: dict[str, Any], status: int, expected: str | None
) -> None:
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": "CarePlan?subject=Patient/anna",
        "channel": {"type": "rest-hook", "endpoint": "https://gp.example.org/hook"},
        **change,
    }
    answer = httpx.post(f"{world['base']}/Subscription", json=subscription, headers=world["gp"])
    assert answer.status_code == status, answer.text
    if expected:
        assert answer.json()["resourceType"] == "OperationOutcome" and expected in answer.text


def test_a_type_the_app_may_not_read_is_refused(secure: dict[str, Any]) -> None:
    base, security = secure["base"], secure["security"]
    scopes = "system/Observation.rs system/Subscription.cru"
    app_id, key = backend_app(security, organization=f"{AGB}|01234567", scope=scopes)
    token = bearer(backend_token(base, app_id, key, scopes).json()["access_token"])
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": "CarePlan?subject=Patient/anna",
        "channel": {"type": "rest-hook", "endpoint": "https://gp.example.org/hook"},
    }
    refused = httpx.post(f"{base}/Subscription", json=subscription, headers=token)
    assert refused.status_code == 403 and "CarePlan" in refused.text


def _worker(database_url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--database-url", database_url, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_during_delivery_loses_nothing(
    world: dict[str, Any], receiver: Receiver, services: Services, database_url: str
) -> None:
    _grant(world)
    _subscribe(world, receiver.url)
    _rounds(world)  # the handshake, by the test's own worker
    receiver.requests.clear()
    receiver.delay = 30.0  # the GP system takes its time: the worker is killed meanwhile
    _change_the_plan(services, "Voor de crash")
    first = _worker(database_url, "--lease-seconds", "2")
    deadline = time.monotonic() + 30
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.requests, "the worker never delivered"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert outbox_status(services).get(("notify", "delivering")) == 1  # taken, not finished
    receiver.delay = 0.0
    time.sleep(2.5)  # the killed worker's lease runs out
    second = _worker(database_url, "--once", "--lease-seconds", "2")
    assert second.wait(timeout=60) == 0
    keys = [r["headers"]["idempotency-key"] for r in receiver.requests]
    assert len(keys) == 2 and keys[0] == keys[1]  # delivered again, recognisably the same
    status = outbox_status(services)
    assert status.get(("notify", "done")) == 1 and ("notify", "delivering") not in status


def test_a_change_outside_the_criteria_makes_no_delivery(
    world: dict[str, Any], receiver: Receiver, services: Services
) -> None:
    _grant(world)
    _subscribe(world, receiver.url, criteria="CarePlan?subject=Patient/karim")
    _subscribe(world, receiver.url, criteria="Goal?subject=Patient/anna")
    _rounds(world)
    receiver.requests.clear()
    _change_the_plan(services, "Niet van Karim")  # a CarePlan, but Anna's
    _rounds(world)
    assert receiver.requests == []
    assert not any(kind == "notify" for kind, _ in outbox_status(services))


@pytest.mark.parametrize(
    "criteria",
    [
        "CarePlan?subject=Patient/anna",
        "CarePlan?subject=Patient/karim",
        "CarePlan?subject=Patient/anna&status=active",
        "CarePlan?subject=Patient/anna&status=completed",
        "CarePlan?status=active,completed",
        "CarePlan?category=https://eigendossier.nl/fhir/CodeSystem/plan-kind|krachtplan",
        "CarePlan?category=krachtplan&subject=Patient/anna",
        "CarePlan?category=|krachtplan",
        "CarePlan",
        "CarePlan?_id=krachtplan",
        "CarePlan?subject=anna",
        "CarePlan?subject:missing=false",
        "CarePlan?date=ge2020-01-01",
        "CarePlan?subject.name=Jansen",
    ],
)
def test_the_index_match_agrees_with_the_search(services: Services, criteria: str) -> None:
    from gateway.delivery import _Matcher, _Row

    load(services, demo_dossier(dt.date.today()), "test: the demo")
    worker = Worker(services)
    subscription = {"resourceType": "Subscription", "id": "s", "criteria": criteria}
    change = _Row(0, "change", "k", None, "CarePlan", "krachtplan", 1, 0)
    with services.store.read() as session:
        indexed = _Matcher(services, {"s": subscription}).matching(
            session, change, worker._matches_in_sql
        )
        searched = worker._matches_in_sql(session, subscription, change)
    worker.close()
    assert (indexed == ["s"]) == searched


@pytest.mark.parametrize("answer", ["redirect", "slow"])
def test_a_redirecting_or_slow_endpoint_is_a_failed_attempt(
    world: dict[str, Any], receiver: Receiver, services: Services, answer: str
) -> None:
    _grant(world)
    _subscribe(world, receiver.url)
    _rounds(world)
    if answer == "redirect":
        receiver.status = 307  # a notification is never sent on to somewhere else
    else:
        receiver.delay = 2.0
        world["worker"]._http.timeout = httpx.Timeout(0.5)
    _change_the_plan(services, f"Een {answer} ontvanger")
    _rounds(world, 1)
    (row,) = [r for r in _outbox(services) if r["kind"] == "notify"]
    assert row["state"] == "pending" and row["attempts"] == 1
    assert ("307" if answer == "redirect" else "did not answer") in row["last_error"]


def _outbox(services: Services) -> list[dict[str, Any]]:
    from gateway.store.schema import outbox

    with services.store.read() as session:
        return [dict(r) for r in session.connection.execute(outbox.select()).mappings()]


def test_housekeeping_clears_old_deliveries_and_expired_exports(
    world: dict[str, Any], receiver: Receiver, services: Services
) -> None:
    from gateway.delivery import tidy
    from gateway.store.schema import export_jobs

    _grant(world)
    _subscribe(world, receiver.url)
    _rounds(world)
    done = outbox_status(services)
    assert done.get(("handshake", "done")) == 1
    assert tidy(services, done_before=0) == (0, 0)  # nothing that old
    far = int((dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).timestamp() * 1_000_000)
    with services.store.engine.begin() as connection:
        connection.execute(
            export_jobs.insert().values(
                id="old", owner=None, request="{}", state="complete", created=0, expires=1
            )
        )
    rows, exports = tidy(services, done_before=far)
    assert rows == sum(n for (_, state), n in done.items() if state == "done")
    assert exports == 1
    assert all(state != "done" for _, state in outbox_status(services))


def test_the_outbox_commands(
    world: dict[str, Any], receiver: Receiver, services: Services, database_url: str
) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    _grant(world)
    _subscribe(world, receiver.url)
    _rounds(world)
    receiver.status = 500
    _change_the_plan(services, "Voor de beheerder")
    for _ in range(4):
        world["clock"].ahead += dt.timedelta(hours=1)
        _rounds(world, 1)
    runner = CliRunner()
    status = runner.invoke(app, ["outbox", "status", "--database-url", database_url])
    assert status.exit_code == 0 and "notify\tdead\t1" in status.output
    dead = runner.invoke(app, ["outbox", "dead", "--database-url", database_url])
    assert "the endpoint answered 500" in dead.output
    key = dead.output.split("\t")[0]
    retried = runner.invoke(app, ["outbox", "retry", key, "--database-url", database_url])
    assert retried.exit_code == 0 and "1 delivery(ies) pending again" in retried.output
    subscription = httpx.get(f"{world['base']}/Subscription?_count=1", headers=world["gp"])
    assert subscription.json()["entry"][0]["resource"]["status"] == "active"  # vouched for
    receiver.status = 200
    before = len(receiver.requests)
    once = runner.invoke(app, ["worker", "--once", "--database-url", database_url])
    assert once.exit_code == 0
    assert len(receiver.requests) == before + 1
    assert receiver.requests[-1]["headers"]["idempotency-key"] == key


def test_a_delivery_for_the_operator_is_logged_as_the_gateway(
    services: Services, receiver: Receiver
) -> None:
    load(services, demo_dossier(dt.date.today()), "test: the demo")
    subscription = {  # written by the operator: no app, no consent to narrow it
        "resourceType": "Subscription",
        "id": "beheer",
        "status": "active",
        "reason": "test",
        "criteria": "CarePlan?subject=Patient/anna",
        "channel": {"type": "rest-hook", "endpoint": receiver.url},
    }
    load(services, [subscription], "test: the operator subscribes")
    _change_the_plan(services, "Voor de beheerder")
    worker = Worker(services)
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    assert len(receiver.requests) == 1
    services.store.catch_up_access_log()
    with services.store.read() as session:
        events = [
            orjson.loads(r[0])
            for r in session.connection.execute(
                resources.select()
                .with_only_columns(resources.c.content)
                .where(resources.c.res_type == "AuditEvent")
            )
        ]
    (event,) = [e for e in events if "notified" in e.get("outcomeDesc", "")]
    assert "unauthenticated" not in orjson.dumps(event).decode()
    assert event["agent"][0]["altId"] == "operator"
