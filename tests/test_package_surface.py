"""Every module declares ``__all__`` and exports only names it defines or re-exports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import gateway
import mappings

MODULES = sorted(
    info.name
    for package in (gateway, mappings)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if ".migrations" not in info.name
)


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    if (
        module.__file__
        and module.__file__.endswith("__init__.py")
        and not hasattr(module, "__all__")
    ):
        assert module.__doc__, f"{name} needs a docstring saying what it owns"
        return
    assert hasattr(module, "__all__"), name
    for export in module.__all__:
        assert hasattr(module, export), f"{name}.__all__ names missing {export}"
