"""Destinations outside the dossier: where the parcels adapters leave in the outbox go.

The operator names each one in the environment, one variable per destination, so that the
credentials in its URL stay out of the database, the logs and every error message::

    EIGENDOSSIER_DESTINATION_BACKOFFICE=https://backoffice.example.nl/omaha
    EIGENDOSSIER_DESTINATION_BACKOFFICE=amqp://user:secret@mq.example.nl:5672/care?exchange=omaha&routing_key=visits

An adapter refers to a destination by its name (``backoffice``); the outbox row and the
parcel keep only the name. The delivery worker sends a parcel:

- over HTTP(S): ``POST`` of the data with its content type, the parcel's
  ``Idempotency-Key`` and its headers as ``X-Eigendossier-<Name>``; any 2xx answer is
  delivery, a redirect is not followed (a failure, as any other answer);
- over AMQP 0-9-1 (RabbitMQ): published to the ``exchange`` with the ``routing_key`` of the
  URL's query, persistent, ``message_id`` the idempotency key, the headers as message
  headers, ``mandatory`` (a message no queue takes is a failure, not a loss), with publisher
  confirms: delivered only once the broker has taken responsibility for it.

A failure returns the reason in words that name neither the URL nor the data; the worker
retries with backoff, as for any delivery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pika
import pika.exceptions

from mappings.core.plugins import Parcel

__all__ = [
    "ENV_PREFIX",
    "Destination",
    "DestinationError",
    "configured",
    "send",
]

ENV_PREFIX = "EIGENDOSSIER_DESTINATION_"
# pika logs every refused connection with a traceback at ERROR; the worker logs the failure
# itself, in one line that names no URL
logging.getLogger("pika").setLevel(logging.CRITICAL)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_AMQP_OWN = ("exchange", "routing_key")


class DestinationError(ValueError):
    """A destination variable that cannot be used (the message names the variable)."""


@dataclass(frozen=True, slots=True)
class Destination:
    name: str
    url: str  # holds credentials: never logged, never stored

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def describe(self) -> str:
        """Where it goes, without credentials: ``amqp 127.0.0.1:5672 exchange omaha``."""
        parts = urlsplit(self.url)
        where = f"{self.scheme} {parts.hostname}" + (f":{parts.port}" if parts.port else "")
        if self.scheme in ("amqp", "amqps"):
            query = dict(parse_qsl(parts.query))
            return f"{where} exchange {query.get('exchange', '')!r}"
        return where + (parts.path or "/")


def configured(environ: Mapping[str, str] | None = None) -> dict[str, Destination]:
    """The destinations the environment names, by name (lower case); a variable that
    cannot be used raises :class:`DestinationError`."""
    found = {}
    for variable, url in sorted((environ if environ is not None else os.environ).items()):
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if not _NAME.match(name):
            raise DestinationError(f"{variable}: a destination name is letters, digits, - and _")
        _check(variable, url)
        found[name] = Destination(name, url)
    return found


def _check(variable: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationError(f"{variable} is not a URL") from None
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise DestinationError(f"{variable}: an HTTP destination names its host")
        return
    if parts.scheme in ("amqp", "amqps"):
        query = dict(parse_qsl(parts.query))
        if not parts.hostname or not query.get("exchange"):
            raise DestinationError(
                f"{variable}: an AMQP destination names its host and ?exchange= "
                "(and, if the exchange routes on it, &routing_key=)"
            )
        if port is not None and not 0 < port < 65536:
            raise DestinationError(f"{variable}: the port is out of range")
        return
    raise DestinationError(f"{variable}: the scheme is http, https, amqp or amqps")


def send(
    destination: Destination, parcel: Parcel, http: httpx.Client, timeout: float
) -> str | None:
    """Deliver one parcel; None when delivered, otherwise why not (no URL, no data)."""
    if destination.scheme in ("amqp", "amqps"):
        return _publish(destination, parcel, timeout)
    return _post(destination, parcel, http)


def _post(destination: Destination, parcel: Parcel, http: httpx.Client) -> str | None:
    headers = {"Content-Type": parcel.content_type, "Idempotency-Key": parcel.key}
    for name, value in parcel.headers.items():
        headers[f"X-Eigendossier-{name}"] = value
    try:
        response = http.post(destination.url, content=parcel.data, headers=headers)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: the endpoint did not answer"
    if 200 <= response.status_code < 300:
        return None
    if 300 <= response.status_code < 400:
        return f"the endpoint answered {response.status_code} (redirects are not followed)"
    return f"the endpoint answered {response.status_code}"


def _publish(destination: Destination, parcel: Parcel, timeout: float) -> str | None:
    parts = urlsplit(destination.url)
    query = parse_qsl(parts.query)
    own = {k: v for k, v in query if k in _AMQP_OWN}
    rest = urlencode([(k, v) for k, v in query if k not in _AMQP_OWN])
    parameters = pika.URLParameters(urlunsplit(parts._replace(query=rest)))
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    parameters.connection_attempts = 1
    properties = pika.BasicProperties(
        content_type=parcel.content_type,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=parcel.key,
        app_id="eigendossier",
        headers=dict(parcel.headers),
    )
    try:
        connection = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPError as error:
        return f"{type(error).__name__}: the broker cannot be reached"
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange=own["exchange"],
            routing_key=own.get("routing_key", ""),
            body=parcel.data,
            properties=properties,
            mandatory=True,
        )
    except pika.exceptions.UnroutableError:
        return "the exchange routed the message to no queue (nothing bound to take it)"
    except pika.exceptions.NackError:
        return "the broker refused the message (nack)"
    except pika.exceptions.ChannelClosedByBroker as error:
        return f"the broker closed the channel: {error.reply_code} {error.reply_text:.200}"
    except pika.exceptions.AMQPError as error:
        return f"{type(error).__name__}: the connection to the broker was lost"
    finally:
        if connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()
    return None
