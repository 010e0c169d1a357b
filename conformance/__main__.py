"""``python -m conformance run|check|list``: the kit without the ``eigendossier`` command."""

from conformance.kit.cli import main

main()
