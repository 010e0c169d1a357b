"""The eigendossier command: serve's safety rules, and the database commands."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from mappings.care.demo import demo_dossier
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


def test_accounts_add_links_a_login_to_the_external_provider(tmp_path: pathlib.Path) -> None:
    from consent.federation import external_subject
    from consent.registry import NO_PASSWORD
    from gateway.app import build_services
    from gateway.security import build_security
    from gateway.settings import Settings

    url = f"sqlite:///{tmp_path}/linked.db"
    issuer = "https://digid-broker.example/oidc"
    command = ["accounts", "add", "jan", "--kind", "patient", "--fhir-user", "Patient/jan"]
    missing = RUNNER.invoke(app, [*command, "--external-subject", "s-1", "--database-url", url])
    assert missing.exit_code == 2 and "--oidc-issuer" in missing.output
    linked = RUNNER.invoke(
        app,
        [*command, "--external-subject", "s-1", "--database-url", url],
        env={"EIGENDOSSIER_OIDC_ISSUER": issuer},
    )
    assert linked.exit_code == 0 and "external provider" in linked.output
    services = build_services(Settings(database_url=url))
    store = build_security(services).store
    saved = store.account_by_subject(external_subject(issuer, "s-1"))
    assert saved is not None and saved.username == "jan"
    assert saved.password_hash == NO_PASSWORD  # no password was given: none works
    services.store.dispose()


def test_serve_refuses_a_misconfigured_external_login(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    env = {"EIGENDOSSIER_OIDC_CLIENT_SECRET": "s3cret-s3cret-s3cret"}
    cases = [
        (["--oidc-issuer", "https://idp.example"], "client id"),
        (
            [
                "--oidc-issuer",
                "https://idp.example",
                "--oidc-client-id",
                "x",
                "--oidc-link",
                "email",
            ],
            "link is one of",
        ),
    ]
    for options, message in cases:
        result = RUNNER.invoke(app, ["serve", *options, "--database-url", url], env=env)
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_demo_and_conformance_commands(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    assert (
        RUNNER.invoke(
            app, ["demo", "load", "--today", "22-11-2026", "--database-url", url]
        ).exit_code
        == 2
    )
    loaded = RUNNER.invoke(app, ["demo", "load", "--today", "2026-11-22", "--database-url", url])
    expected = len(demo_dossier(dt.date(2026, 11, 22)))
    assert loaded.exit_code == 0 and f"{expected} created" in loaded.output
    exported = RUNNER.invoke(
        app, ["definitions", "export", "--canonical-base", "https://x.example/fhir"]
    )
    bundle = json.loads(exported.output)
    assert bundle["type"] == "transaction"
    assert all(
        e["resource"].get("url", "https://x.example/fhir/").startswith("https://x.example/fhir/")
        for e in bundle["entry"]
        if e["resource"]["resourceType"] != "NamingSystem"
    )


def test_conformance_is_now_the_kit_and_definitions_keeps_the_old_commands(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/defs.db"
    kit = RUNNER.invoke(app, ["conformance", "--help"])
    assert kit.exit_code == 0 and "run" in kit.output and "check" in kit.output
    old = RUNNER.invoke(app, ["conformance", "load", "--database-url", url])
    assert old.exit_code == 2  # the kit has no load: the name is the kit's now
    new = RUNNER.invoke(app, ["definitions", "load", "--database-url", url])
    assert new.exit_code == 0 and "created" in new.output


def test_version() -> None:
    result = RUNNER.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("eigendossier ") and len(result.output.splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense://x", "not a database this gateway knows"),
        ("not a url at all", "is not a database URL"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/x", "cannot be opened"),
        ("sqlite:////nonexistent/dir/x.db", "cannot be opened"),
    ],
)
def test_a_bad_database_url_is_one_line_and_exit_2(url: str, says: str) -> None:
    commands = (["accounts", "list"], ["apps", "list"], ["db", "upgrade"], ["demo", "load"])
    for command in (*commands, ["index-log"]):
        result = RUNNER.invoke(app, [*command, "--database-url", url])
        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], (command, result.output)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_a_missing_postgresql_driver_is_named_before_anything_runs(
    driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Either driver missing (the ``postgres`` extra not installed) is one line naming the
    extra, before the gateway opens the database or serves anything."""
    monkeypatch.setitem(sys.modules, driver, None)  # its import now fails as if missing
    url = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    for command in (["apps", "list"], ["index-log"]):
        result = RUNNER.invoke(app, [*command, "--database-url", url])
        assert result.exit_code == 2, (command, result.output)
        assert result.output.strip().splitlines() == [
            "postgresql+psycopg://postgres@127.0.0.1:1/x: PostgreSQL needs its drivers:"
            " pip install 'eigendossier[postgres]'"
        ]


def test_a_missing_fhir_user_is_named_plainly(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    result = RUNNER.invoke(
        app, ["accounts", "add", "anna", "--kind", "patient", "--database-url", url]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "A patient login is linked to its FHIR user: --fhir-user Patient/ID"
    )


def test_accounts_list_unlock_and_remove(secure: dict) -> None:
    from consent.oauth import LoginFailed
    from tests.smart import account, bearer, login

    security, base = secure["security"], secure["base"]
    url = security.store.engine.url.render_as_string(hide_password=False)
    account(security, "anna", "patient", "Patient/anna")
    token = login(base, security, "anna")["access_token"]
    for _ in range(6):  # lock the account
        with pytest.raises(LoginFailed):
            security.server.login("anna", "wrong password wrong")
    listed = RUNNER.invoke(app, ["accounts", "list", "--database-url", url])
    assert listed.exit_code == 0
    assert "anna\tpatient\tPatient/anna\tlocked" in listed.output
    unlocked = RUNNER.invoke(app, ["accounts", "unlock", "anna", "--database-url", url])
    assert unlocked.exit_code == 0
    assert "locked" not in RUNNER.invoke(app, ["accounts", "list", "--database-url", url]).output
    assert httpx.get(f"{base}/Patient/anna", headers=bearer(token)).status_code == 404
    removed = RUNNER.invoke(app, ["accounts", "remove", "anna", "--database-url", url])
    assert removed.exit_code == 0
    assert httpx.get(f"{base}/Patient/anna", headers=bearer(token)).status_code == 401
    again = RUNNER.invoke(app, ["accounts", "remove", "anna", "--database-url", url])
    assert again.exit_code == 2 and "No login 'anna'" in again.output
    assert (
        RUNNER.invoke(app, ["accounts", "unlock", "nobody", "--database-url", url]).exit_code == 2
    )


def test_a_new_client_id_is_never_read_as_an_option() -> None:
    """Client ids are typed on command lines: none starts with ``-`` (one in 64 URL-safe
    tokens did, and ``apps disable`` then failed with "No such option")."""
    from consent.secrets import new_client_id

    ids = {new_client_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(i.isalnum() and len(i) == 32 for i in ids)


def test_apps_disable_enable_and_remove_stop_tokens_at_once(secure: dict) -> None:
    from tests.smart import backend_app, backend_token, bearer

    security, base = secure["security"], secure["base"]
    url = security.store.engine.url.render_as_string(hide_password=False)
    client_id, key = backend_app(security)
    token = backend_token(base, client_id, key, "system/*.rs").json()["access_token"]
    assert httpx.get(f"{base}/Patient", headers=bearer(token)).status_code == 200
    disabled = RUNNER.invoke(app, ["apps", "disable", client_id, "--database-url", url])
    assert disabled.exit_code == 0, disabled.output
    assert (
        f"{client_id}\tbackend"
        in RUNNER.invoke(app, ["apps", "list", "--database-url", url]).output
    )
    assert "disabled" in RUNNER.invoke(app, ["apps", "list", "--database-url", url]).output
    assert httpx.get(f"{base}/Patient", headers=bearer(token)).status_code == 401
    assert backend_token(base, client_id, key, "system/*.rs").status_code == 401
    assert RUNNER.invoke(app, ["apps", "enable", client_id, "--database-url", url]).exit_code == 0
    token = backend_token(base, client_id, key, "system/*.rs").json()["access_token"]
    assert httpx.get(f"{base}/Patient", headers=bearer(token)).status_code == 200
    assert RUNNER.invoke(app, ["apps", "remove", client_id, "--database-url", url]).exit_code == 0
    assert httpx.get(f"{base}/Patient", headers=bearer(token)).status_code == 401
    gone = RUNNER.invoke(app, ["apps", "remove", client_id, "--database-url", url])
    assert gone.exit_code == 2 and "No app" in gone.output
