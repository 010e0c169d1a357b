"""The one door around the access filter: every unrestricted use of the dossier names why.

Everyone else reaches the dossier through a context that starts at "nothing" and is
narrowed per interaction by the caller's scopes and the client's Consents. What no caller's
consent narrows goes through here, and only here:

- :func:`system_context`: a context that sees and writes everything, for the operator's own
  commands (``eigendossier definitions load``, ``demo load``: the database's authority, as
  ``db upgrade``), ``serve --open`` development mode, and the adapters that act under a
  legal basis other than the client's Consent (declarations: the care contract);
- :meth:`Session.unguarded <gateway.store.repository.Session.unguarded>`: a write inside a
  caller's request that the caller's write filter must not refuse: the Consent a
  break-the-glass writes. (The request's access-log entries are no resource writes: they
  are appended to the log as written, and the gateway's own transactions index them.)

Each use names its reason, which is logged (logger ``eigendossier.privileged``, never
health data) and carried in :attr:`Context.privilege`. ``grep -rn "system_context(\\|unguarded("``
lists every use; a test holds the rest of the code to it.
"""

from __future__ import annotations

import logging

from gateway.interactions.model import Context, Router, Services
from gateway.store.access import AccessFilter

__all__ = ["system_context"]

log = logging.getLogger("eigendossier.privileged")


def system_context(services: Services, reason: str, router: Router) -> Context:
    """A context that every access filter admits, for ``reason`` (logged).

    ``router``: the dispatcher (a handler passes its own ``context.router``).
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("A privileged context names its reason")
    log.info("privileged access to the store: %s", reason)
    return Context(services, access=AccessFilter.unrestricted(), router=router, privilege=reason)
