"""The eigendossier command: serve's safety rules, and the database commands."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import _free_port

RUNNER = CliRunner()


def test_open_mode_refuses_a_non_loopback_host(tmp_path: pathlib.Path) -> None:
    result = RUNNER.invoke(
        app,
        ["serve", "--open", "--host", "0.0.0.0", "--database-url", f"sqlite:///{tmp_path}/a.db"],
    )
    assert result.exit_code == 2 and "loopback" in result.output


def test_db_upgrade_and_current_honour_the_environment(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    env = {"EIGENDOSSIER_DATABASE_URL": url}
    assert RUNNER.invoke(app, ["db", "current"], env=env).exit_code == 1
    assert RUNNER.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    assert RUNNER.invoke(app, ["db", "current"], env=env).exit_code == 0


def _serve(tmp_path: pathlib.Path, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "serve",
            *extra,
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp_path}/served.db",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_serve_without_open_requires_tokens_and_registers_apps(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/served.db"
    registered = RUNNER.invoke(
        app,
        [
            "apps",
            "register",
            "--name",
            "Portaal",
            "--kind",
            "public",
            "--scope",
            "launch/patient patient/*.rs",
            "--redirect-uri",
            "https://portal.example/cb",
            "--database-url",
            url,
        ],
    )
    assert registered.exit_code == 0, registered.output
    client_id = registered.output.strip().splitlines()[-1]
    as_json = RUNNER.invoke(
        app,
        [
            "apps",
            "register",
            "--name",
            "Huisarts",
            "--kind",
            "backend",
            "--scope",
            "system/CarePlan.rs",
            "--jwks-uri",
            "https://gp.example/jwks.json",
            "--organization",
            "http://fhir.nl/fhir/NamingSystem/agb|01234567",
            "--json",
            "--database-url",
            url,
        ],
    )
    assert json.loads(as_json.output)["token_endpoint_auth_method"] == "private_key_jwt"
    refused = RUNNER.invoke(
        app,
        [
            "apps",
            "register",
            "--name",
            "x",
            "--kind",
            "backend",
            "--scope",
            "system/*.rs",
            "--database-url",
            url,
        ],
    )
    assert refused.exit_code == 2 and "keys" in refused.output
    added = RUNNER.invoke(
        app,
        [
            "accounts",
            "add",
            "anna",
            "--kind",
            "patient",
            "--fhir-user",
            "Patient/anna",
            "--password-stdin",
            "--database-url",
            url,
        ],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    port = _free_port()
    process = _serve(tmp_path, port)
    try:
        assert process.stdout is not None and "FHIR base" in process.stdout.readline()
        for _ in range(100):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/fhir/Patient")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert response.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/fhir/metadata").status_code == 200
        found = RUNNER.invoke(app, ["apps", "list", "--database-url", url]).output
        assert client_id in found
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)


def test_serve_open_prints_the_base_url_and_serves(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "serve",
            "--open",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp_path}/served.db",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.strip() == f"Eigen Dossier FHIR base: http://127.0.0.1:{port}/fhir"
        for _ in range(100):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/fhir/metadata")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=20)
    assert "OPEN MODE" in errors
