"""``eigendossier worker`` and ``eigendossier outbox``: the deliveries, and what is stuck."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from typing import Annotated

import typer

from gateway.cli.common import DatabaseUrl, opened, services_at
from gateway.settings import DEFAULT_DATABASE_URL

__all__ = ["outbox_app", "worker"]

outbox_app = typer.Typer(help="The outbox: what waits to be delivered.", no_args_is_help=True)


def worker(
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then stop")
    ] = False,
    lease_seconds: Annotated[
        float,
        typer.Option(
            envvar="EIGENDOSSIER_LEASE_SECONDS",
            help="How long a delivery is a worker's before another may take it over",
        ),
    ] = 60.0,
) -> None:
    """Run the delivery worker (``serve`` runs one itself unless ``--no-worker``)."""
    from gateway.delivery import DeliverySettings, Worker  # noqa: PLC0415
    from gateway.security import build_security  # noqa: PLC0415
    from gateway.settings import Settings  # noqa: PLC0415

    base_url = Settings.env("base_url") or ""
    with opened(database_url), services_at(database_url, base_url=base_url) as services:
        settings = DeliverySettings(lease=dt.timedelta(seconds=lease_seconds))
        delivery = Worker(services, settings, apps=build_security(services).store.app)
        if once:
            try:
                while delivery.run_once():
                    pass
            finally:
                delivery.close()
            return
        stop = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
        typer.echo("delivery worker running", err=True)
        delivery.run(stop)


@outbox_app.command("status")
def status(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """How many rows per kind and state (pending, delivering, done, dead)."""
    from gateway.delivery import outbox_status  # noqa: PLC0415

    with opened(database_url), services_at(database_url) as services:
        counts = outbox_status(services)
    if not counts:
        typer.echo("the outbox is empty")
    for (kind, state), count in sorted(counts.items()):
        typer.echo(f"{kind}\t{state}\t{count}")


@outbox_app.command("dead")
def dead(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """The deliveries that gave up: their key, attempts and last error."""
    from gateway.delivery import dead_rows  # noqa: PLC0415

    with opened(database_url), services_at(database_url) as services:
        rows = dead_rows(services)
    for key, attempts, error in rows:
        typer.echo(f"{key}\t{attempts}\t{error or ''}")
    if not rows:
        typer.echo("nothing dead")


@outbox_app.command("retry")
def retry(
    key: Annotated[str | None, typer.Argument(help="One delivery's key; without: all dead")] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Try dead deliveries again, now (their attempts counted from zero)."""
    from gateway.delivery import retry_dead  # noqa: PLC0415

    with opened(database_url), services_at(database_url) as services:
        count = retry_dead(services, key)
    typer.echo(f"{count} delivery(ies) pending again")
