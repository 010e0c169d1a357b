"""``python -m conformance run|check|list``: the kit without the ``eigendossier`` command."""

from __future__ import annotations

from conformance.kit.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
