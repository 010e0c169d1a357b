"""Every module declares ``__all__`` and exports only names it defines or re-exports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import adapters
import conformance
import gateway
import mappings

MODULES = sorted(
    info.name
    for package in (gateway, mappings, adapters, conformance)
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


def test_every_dependency_is_used_and_postgresql_is_an_extra() -> None:
    import pathlib
    import re
    import tomllib

    root = pathlib.Path(__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[\[<>=]", d)[0].strip().lower() for d in project["dependencies"]]
    assert "psycopg" not in names
    assert any("psycopg" in d for d in project["optional-dependencies"]["postgres"])
    modules = {"tzdata": None, "uvicorn": "uvicorn"}  # tzdata: data for zoneinfo, no import
    source = "\n".join(
        p.read_text() for pkg in ("mappings", "consent", "gateway", "conformance", "adapters")
        for p in (root / pkg).rglob("*.py")
    )  # fmt: skip
    for name in names:
        module = modules.get(name, name)
        if module is None:
            continue
        assert re.search(rf"^\s*(from|import) {module}\b", source, re.M), (
            f"{name} is never imported"
        )
