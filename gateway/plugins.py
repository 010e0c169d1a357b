"""The plugins of this installation (adapters), found through their entry points (ADR 0012).

The gateway never imports an adapter: a distribution names its plugin in the entry-point
group ``eigendossier.plugins`` and the gateway offers it the seams of
:mod:`mappings.core.plugins`: a dossier opened through the privileged door, a place for its
commands and its operations.
"""

from __future__ import annotations

import functools
import getpass
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points

from mappings.core.plugins import PLUGIN_GROUP, Dossier, DossierOpener, Operation, Plugin

__all__ = ["command_line_opener", "load_plugins", "operations_of"]

log = logging.getLogger("eigendossier.plugins")


@functools.cache
def load_plugins() -> tuple[Plugin, ...]:
    """Every installed plugin, by name; one that does not load is logged and left out."""
    found: dict[str, Plugin] = {}
    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        try:
            plugin = point.load()
        except Exception:
            log.exception("plugin %s could not be loaded", point.name)
            continue
        if isinstance(plugin, Plugin) and plugin.name not in found:
            found[plugin.name] = plugin
    return tuple(found.values())


def operations_of(plugins: tuple[Plugin, ...]) -> dict[str, Operation]:
    return {op.name: op for plugin in plugins for op in plugin.operations}


def command_line_opener(source: str) -> DossierOpener:
    """``open_dossier(database_url, reason)`` for a plugin's commands: the operator's."""

    @contextmanager
    def open_dossier(database_url: str | None, reason: str) -> Iterator[Dossier]:
        from gateway.cli.common import opened, services_at  # noqa: PLC0415
        from gateway.interactions.dispatch import Dispatcher  # noqa: PLC0415
        from gateway.interactions.dossier import InProcessDossier  # noqa: PLC0415
        from gateway.settings import DEFAULT_DATABASE_URL  # noqa: PLC0415

        url = database_url or DEFAULT_DATABASE_URL
        with opened(url), services_at(url) as services:
            yield InProcessDossier(
                services,
                reason,
                source=source,
                requester=f"operator:{_user()}",
                router=Dispatcher(),
            )

    return open_dossier


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
