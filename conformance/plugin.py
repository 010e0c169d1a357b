"""The kit as a command of ``eigendossier`` (``eigendossier conformance ...``), joined through
the entry point ``eigendossier.plugins`` like the adapters: the gateway never imports it,
and the kit needs no gateway to run (ADR 0012)."""

from __future__ import annotations

from typing import Any

from conformance.kit.cli import conformance_app
from mappings.core.plugins import DossierOpener, Plugin

__all__ = ["PLUGIN"]


def _commands(_: DossierOpener) -> Any:
    return conformance_app


PLUGIN = Plugin(name="conformance", commands=_commands)
