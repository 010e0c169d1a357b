"""The Omaha export to a back office, from a real dossier to a real receiver.

The records are read from the demo month in this run's store (SQLite or PostgreSQL); they
leave through the outbox and the delivery worker to the RabbitMQ broker of this machine
(127.0.0.1:5672) or to an HTTP receiver on a free loopback port. "The broker stopped" is a
TCP proxy in front of the real broker that is cut and restored: to the gateway the broker is
gone (connections refused, open ones dropped) while the broker itself, shared with the rest
of the machine, keeps running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import pathlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pika
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.backoffice.omaha import FORMAT, Period, export_omaha, omaha_records
from gateway.delivery import DeliverySettings, Worker, dead_rows, outbox_status
from gateway.destinations import DestinationError, configured
from gateway.interactions.dispatch import Dispatcher
from gateway.interactions.dossier import InProcessDossier
from gateway.interactions.model import Services
from gateway.loading import load
from gateway.store.schema import outbox, parcels
from mappings.care.demo import demo_dossier
from mappings.core.errors import Unprocessable
from tests.conftest import _free_port, run_cli, running
from tests.smart import backend_app, backend_token, bearer

TODAY = dt.date.today()
PERIOD = (TODAY.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: the day of Anna's phone call in the demo, a week before today
CALLED = TODAY - dt.timedelta(days=7)
#: the demo month's finished visits: 40 of 7 clients; Mila's on the 29th when the month
#: has one (not in a February of 28 days); and Anna's phone call when it fell in that month
#: (in the first seven days of this one). 3 district nursing clients are Omaha-coded
VISITS = (
    40
    + ((TODAY.replace(day=1) - dt.timedelta(days=1)).day >= 29)
    + (CALLED.strftime("%Y-%m") == PERIOD)
)
CLIENTS = 7


def _messages(per_message: int) -> int:
    """The messages an export of the demo month makes at ``per_message`` visits each."""
    return -(-VISITS // per_message)


def _dossier(services: Services) -> InProcessDossier:
    return InProcessDossier(
        services, "the Omaha export (tests)", source="omaha", requester="test", router=Dispatcher()
    )


@pytest.fixture()
def demo(services: Services) -> InProcessDossier:
    load(services, demo_dossier(TODAY), "test: the demo")
    return _dossier(services)


def _all(dossier: InProcessDossier, resource_type: str) -> list[dict[str, Any]]:
    return [r for chunk in dossier.search(resource_type, []) for r in chunk]


def _outbox(services: Services) -> list[Any]:
    with services.store.read() as session:
        return list(session.connection.execute(select(outbox).order_by(outbox.c.pk)))


def _drain(worker: Worker, done: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the outbox did not empty in time"
        if not worker.run_once():
            time.sleep(0.05)


# -- the records --------------------------------------------------------------------------


def test_each_finished_visit_is_a_record_with_its_problems_interventions_and_ratings(
    demo: InProcessDossier,
) -> None:
    records = list(omaha_records(demo, Period.parse(PERIOD)))
    assert len(records) == VISITS
    assert len({r["client"] for r in records}) == CLIENTS
    assert {r["format"] for r in records} == {FORMAT}
    henk = sorted((r for r in records if r["client"] == "henk"), key=lambda r: r["date"])
    first, middle, last = henk[0], henk[1], henk[-1]
    assert [p["code"] for p in first["problems"]] == ["24", "42"]
    skin = first["problems"][0]
    assert skin["name"] == "Huid" and skin["domain"] == "physiological"
    assert skin["interventions"] == [
        {
            "category": "treatments-procedures",
            "name": "Behandelingen en procedures",
            "description": "Wond onderbeen verzorgd",
            "performer": "Practitioner/sanne",
        }
    ]
    assert skin["rating"] == {
        "knowledge": 3,
        "behavior": 3,
        "status": 2,
        "targets": {"status": 4},
        "date": first["date"],
    }
    assert all("rating" not in p for p in middle["problems"])  # rated at first and last only
    assert last["problems"][0]["rating"]["status"] == 3
    called = list(omaha_records(demo, Period.parse(CALLED.isoformat())))
    anna_phone = next(r for r in called if r["visit"] == "bezoek-3")
    assert anna_phone["problems"] == [] and anna_phone["mode"] == "phone"
    assert "bsn" not in orjson.dumps(records + called).decode().lower()
    assert "Jansen" not in orjson.dumps(records + called).decode()  # no names: the dossier's ids


def test_a_day_and_a_team_narrow_the_export(demo: InProcessDossier) -> None:
    day = f"{PERIOD}-01"
    records = list(omaha_records(demo, Period.parse(day)))
    assert records and {r["date"] for r in records} == {day}
    assert list(omaha_records(demo, Period.parse(PERIOD), team="another-team")) == []
    assert len(list(omaha_records(demo, Period.parse(PERIOD), team="buurtteam-oost"))) == VISITS


@pytest.mark.parametrize("period", ["2026-13", "2026-11-31", "november", "2026-1", ""])
def test_a_period_that_is_not_a_month_or_a_day_is_refused(period: str) -> None:
    with pytest.raises(Unprocessable, match="not a period"):
        Period.parse(period)


# -- into the outbox ----------------------------------------------------------------------


def test_an_unknown_destination_writes_nothing(
    demo: InProcessDossier, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EIGENDOSSIER_DESTINATION_NOWHERE", raising=False)
    events = len(_all(demo, "AuditEvent"))
    with pytest.raises(Unprocessable, match="No destination 'nowhere'"):
        export_omaha(demo, PERIOD, "nowhere")
    with pytest.raises(Unprocessable, match="per-message"):
        export_omaha(demo, PERIOD, "nowhere", per_message=0)
    assert _outbox(services) == []
    assert len(_all(demo, "AuditEvent")) == events


def test_the_export_is_logged_for_each_client_and_a_rerun_sends_nothing_new(
    demo: InProcessDossier, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIGENDOSSIER_DESTINATION_BACKOFFICE", "https://backoffice.test/omaha")
    done = export_omaha(demo, PERIOD, "backoffice", per_message=10)
    tens = _messages(10)
    assert (done.visits, done.clients, done.messages, done.new) == (VISITS, CLIENTS, tens, tens)
    rows = _outbox(services)
    assert [(r.kind, r.res_id, r.state) for r in rows] == [
        ("parcel", "backoffice", "pending")
    ] * tens
    logged = [
        e
        for e in _all(demo, "AuditEvent")
        if e.get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code") == "HOPERAT"
    ]
    assert len(logged) == CLIENTS
    henk = next(e for e in logged if "Encounter/henk-" in orjson.dumps(e).decode())
    assert (
        henk["outcomeDesc"]
        == f"Omaha export of 14 visit(s) of {PERIOD} to the back office 'backoffice'"
    )
    again = export_omaha(demo, PERIOD, "backoffice", per_message=10)
    assert again.new == 0 and len(_outbox(services)) == tens
    # one intervention described differently: the message that holds its visit is new
    procedure = next(p for p in _all(demo, "Procedure") if p["id"].startswith("henk-"))
    procedure["note"] = [{"text": "Wond verzorgd en gefotografeerd"}]
    load(services, [procedure], "test: a nurse corrects her note")
    changed = export_omaha(demo, PERIOD, "backoffice", per_message=10)
    assert changed.new == 1 and len(_outbox(services)) == tens + 1


# -- to RabbitMQ --------------------------------------------------------------------------


class BrokerProxy:
    """A TCP proxy in front of the real broker; ``cut()`` makes the broker unreachable
    (refused and dropped connections), ``restore()`` brings it back on the same port."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture()
def exchange() -> Iterator[tuple[str, str]]:
    """A direct exchange with a durable queue bound to it on the real broker: (exchange,
    queue); both removed afterwards."""
    name = f"eigendossier-test-{uuid.uuid4().hex[:12]}"
    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    channel = connection.channel()
    channel.exchange_declare(name, "direct", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, "visits")
    try:
        yield name, name
    finally:
        channel.queue_delete(name)
        channel.exchange_delete(name)
        connection.close()


def _consume(queue: str) -> list[tuple[Any, bytes]]:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    channel = connection.channel()
    found = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        found.append((properties, body))
    connection.close()
    return found


def _amqp(port: int, exchange: str, routing_key: str = "visits") -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F?exchange={exchange}&routing_key={routing_key}"


def test_messages_reach_the_exchange_persistent_with_their_keys(
    demo: InProcessDossier,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    exchange: tuple[str, str],
) -> None:
    name, queue = exchange
    monkeypatch.setenv("EIGENDOSSIER_DESTINATION_BACKOFFICE", _amqp(5672, name))
    export_omaha(demo, PERIOD, "backoffice", per_message=20)
    parts = _messages(20)
    worker = Worker(services, DeliverySettings(first_delay=dt.timedelta(0)))
    try:
        _drain(worker, lambda: outbox_status(services) == {("parcel", "done"): parts})
    finally:
        worker.close()
    received = _consume(queue)
    keys = [r.key for r in _outbox(services)]
    assert [p.message_id for p, _ in received] == keys
    assert all(
        p.delivery_mode == 2 and p.content_type == "application/x-ndjson" for p, _ in received
    )
    assert [p.headers["Part"] for p, _ in received] == [f"{n}/{parts}" for n in range(1, parts + 1)]
    lines = [orjson.loads(line) for _, body in received for line in body.splitlines()]
    assert lines == list(omaha_records(demo, Period.parse(PERIOD)))
    with services.store.read() as session:  # delivered: the data is not kept
        assert list(session.connection.execute(select(parcels))) == []


def test_rabbitmq_stopped_in_the_middle_of_an_export_loses_nothing(
    demo: InProcessDossier,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    exchange: tuple[str, str],
) -> None:
    name, queue = exchange
    proxy = BrokerProxy()
    proxy.restore()
    monkeypatch.setenv("EIGENDOSSIER_DESTINATION_BACKOFFICE", _amqp(proxy.port, name))
    done = export_omaha(demo, PERIOD, "backoffice", per_message=5)
    fives = _messages(5)
    assert done.messages == fives
    settings = DeliverySettings(batch=2, first_delay=dt.timedelta(milliseconds=50), timeout=3)
    worker = Worker(services, settings)
    try:
        assert worker.run_once() == 2  # two messages out
        proxy.cut()  # the broker is gone
        assert worker.run_once() == 2
        rows = _outbox(services)
        assert [r.state for r in rows] == ["done"] * 2 + ["pending"] * (fives - 2)
        assert [r.attempts for r in rows[2:4]] == [1, 1]
        assert all("broker" in r.last_error for r in rows[2:4])
        assert {r.attempts for r in rows[4:]} == {0}
        time.sleep(0.2)
        worker.run_once()  # due again, and still gone: they wait, nothing is lost
        assert outbox_status(services).get(("parcel", "dead")) is None
        proxy.restore()  # the broker is back
        _drain(worker, lambda: outbox_status(services) == {("parcel", "done"): fives})
    finally:
        worker.close()
        proxy.cut()
    received = _consume(queue)
    keys = [r.key for r in _outbox(services)]
    assert sorted(p.message_id for p, _ in received) == sorted(keys)  # each once
    lines = [orjson.loads(line) for _, body in received for line in body.splitlines()]
    assert sorted(r["visit"] for r in lines) == sorted(
        r["visit"] for r in omaha_records(demo, Period.parse(PERIOD))
    )


def test_a_missing_exchange_or_a_message_no_queue_takes_is_a_failure_not_a_loss(
    demo: InProcessDossier,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    exchange: tuple[str, str],
) -> None:
    name, _ = exchange
    settings = DeliverySettings(first_delay=dt.timedelta(0), max_attempts=1)
    cases = [
        (_amqp(5672, f"{name}-absent"), "404"),
        (_amqp(5672, name, routing_key="nobody-listens"), "no queue"),
    ]
    for url, expected in cases:
        monkeypatch.setenv("EIGENDOSSIER_DESTINATION_BACKOFFICE", url)
        export_omaha(demo, f"{PERIOD}-01", "backoffice")
        worker = Worker(services, settings)
        try:
            worker.run_once()
        finally:
            worker.close()
        dead = dead_rows(services)
        assert len(dead) == 1 and expected in (dead[0][2] or ""), dead
        assert "guest" not in (dead[0][2] or "")  # never the credentials
        with services.store.read() as session:  # the data is kept for a retry
            assert len(list(session.connection.execute(select(parcels)))) == 1
        with services.store.engine.begin() as connection:
            connection.execute(parcels.delete())
            connection.execute(outbox.delete())


# -- to an HTTP endpoint ------------------------------------------------------------------


class BackOffice:
    def __init__(self) -> None:
        self.port = _free_port()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200

    async def receive(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        headers = {"Location": "http://elsewhere.test/"} if self.status in (301, 307) else {}
        return Response(status_code=self.status, headers=headers)


@pytest.fixture()
def back_office() -> Iterator[BackOffice]:
    found = BackOffice()
    app = Starlette(routes=[Route("/omaha", found.receive, methods=["POST"])])
    with running(app, found.port):
        yield found


def test_an_http_back_office_gets_each_message_with_its_key_until_it_says_yes(
    demo: InProcessDossier,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    back_office: BackOffice,
) -> None:
    url = f"http://127.0.0.1:{back_office.port}/omaha"
    monkeypatch.setenv("EIGENDOSSIER_DESTINATION_BACKOFFICE", url)
    export_omaha(demo, PERIOD, "backoffice")
    settings = DeliverySettings(first_delay=dt.timedelta(0), max_attempts=5)
    worker = Worker(services, settings)
    try:
        back_office.status = 500
        worker.run_once()
        back_office.status = 307
        worker.run_once()
        rows = _outbox(services)
        assert rows[0].state == "pending" and rows[0].attempts == 2
        assert "307" in rows[0].last_error and "redirect" in rows[0].last_error
        back_office.status = 202
        _drain(worker, lambda: outbox_status(services) == {("parcel", "done"): 1})
    finally:
        worker.close()
    assert len(back_office.requests) == 3
    keys = {headers["idempotency-key"] for headers, _ in back_office.requests}
    assert keys == {rows[0].key}  # the same key every time: the receiver drops repeats
    headers, body = back_office.requests[-1]
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["x-eigendossier-format"] == FORMAT
    assert headers["x-eigendossier-period"] == PERIOD
    assert len(body.splitlines()) == VISITS


# -- configuration --------------------------------------------------------------------------


def test_destinations_come_from_the_environment_and_bad_ones_are_named() -> None:
    found = configured(
        {
            "EIGENDOSSIER_DESTINATION_BACKOFFICE": "amqps://u:secret@mq.test/care?exchange=omaha",
            "EIGENDOSSIER_DESTINATION_ARCHIVE": "https://archive.test/in",
            "EIGENDOSSIER_DATABASE_URL": "sqlite:///x.db",
        }
    )
    assert sorted(found) == ["archive", "backoffice"]
    assert "secret" not in found["backoffice"].describe()
    assert found["backoffice"].describe() == "amqps mq.test exchange 'omaha'"
    bad = {
        "EIGENDOSSIER_DESTINATION_X": "ftp://files.test/",
        "EIGENDOSSIER_DESTINATION_Y": "amqp://mq.test/",  # no exchange
        "EIGENDOSSIER_DESTINATION_Z": "https:///nohost",
        "EIGENDOSSIER_DESTINATION_A%B": "https://a.test/",
    }
    for variable, url in bad.items():
        with pytest.raises(DestinationError, match=variable.replace("%", ".")):
            configured({variable: url})


# -- the operation and the command --------------------------------------------------------


def _parameters(**values: Any) -> dict[str, Any]:
    parameter = []
    for name, value in values.items():
        key = "valueInteger" if isinstance(value, int) else "valueString"
        parameter.append({"name": name.replace("_", "-"), key: value})
    return {"resourceType": "Parameters", "parameter": parameter}


def test_the_operation_is_for_backend_apps_with_the_scope(
    secure: dict[str, Any], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIGENDOSSIER_DESTINATION_BACKOFFICE", "https://backoffice.test/omaha")
    load(services, demo_dossier(TODAY), "test: the demo")
    base, security = secure["base"], secure["security"]
    body = _parameters(period=PERIOD, destination="backoffice", per_message=50)
    assert httpx.post(f"{base}/$omaha-export", json=body).status_code == 401
    writer_id, writer_key = backend_app(security, scope="system/Claim.c")
    writer = backend_token(base, writer_id, writer_key, "system/Claim.c").json()["access_token"]
    refused = httpx.post(f"{base}/$omaha-export", json=body, headers=bearer(writer))
    assert refused.status_code == 403, refused.text
    office_id, office_key = backend_app(security, scope="system/Encounter.rs")
    office = backend_token(base, office_id, office_key, "system/Encounter.rs").json()
    headers = bearer(office["access_token"])
    done = httpx.post(f"{base}/$omaha-export", json=body, headers=headers)
    assert done.status_code == 200, done.text
    text = done.json()["issue"][0]["diagnostics"]
    expected = f"{VISITS} visits of {CLIENTS} clients in 1 message(s) for 'backoffice'"
    assert text == f"{expected}; 1 new in the outbox"
    for wrong, expected in [
        (_parameters(period="2026-99", destination="backoffice"), "not a period"),
        (_parameters(period=PERIOD, destination="nowhere"), "No destination"),
        (_parameters(period=PERIOD), "destination"),
        (_parameters(period=PERIOD, destination="backoffice", team="a,b"), "team is the id"),
        (_parameters(period=PERIOD, destination="backoffice", per_message="many"), "integer"),
    ]:
        answer = httpx.post(f"{base}/$omaha-export", json=wrong, headers=headers)
        assert answer.status_code in (400, 422), answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert expected in answer.text, answer.text


def test_the_command_sends_or_writes_a_file(
    services: Services, database_url: str, tmp_path: pathlib.Path
) -> None:
    load(services, demo_dossier(TODAY), "test: the demo")
    out = tmp_path / "omaha.ndjson"
    written = run_cli(
        "omaha",
        "export",
        "--period",
        PERIOD,
        "--out",
        str(out),
        database=database_url,
        cwd=tmp_path,
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"{out}: {VISITS} visits of {CLIENTS} clients"
    assert len(out.read_bytes().splitlines()) == VISITS
    env = {"EIGENDOSSIER_DESTINATION_BACKOFFICE": "https://backoffice.test/omaha"}
    sent = run_cli(
        "omaha",
        "export",
        "--period",
        PERIOD,
        "--to",
        "backoffice",
        database=database_url,
        cwd=tmp_path,
        **env,
    )
    assert sent.returncode == 0, sent.stderr
    assert "1 new in the outbox" in sent.stdout
    status = run_cli("outbox", "status", database=database_url, cwd=tmp_path)
    assert "parcel" in status.stdout and "pending" in status.stdout
    neither = run_cli("omaha", "export", "--period", PERIOD, database=database_url, cwd=tmp_path)
    assert neither.returncode == 2 and "--to DESTINATION or --out FILE" in neither.stderr
    unknown = run_cli(
        "omaha",
        "export",
        "--period",
        PERIOD,
        "--to",
        "nowhere",
        database=database_url,
        cwd=tmp_path,
    )
    assert unknown.returncode == 2 and "No destination 'nowhere'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
