"""A gateway for the kit to judge: the secured test server over the demo dossier, with the
client Anna's login, a public app for the launch and a backend app of Huisartsenpraktijk
Zuid holding an RS384 and an ES384 key, as an integrator would be given them."""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

import pytest

from conformance import smart
from conformance.kit.session import Options
from gateway.loading import load
from mappings.care.demo import demo_dossier
from tests.smart import PASSWORD, REDIRECT, account

GP_AGB = "http://fhir.nl/fhir/NamingSystem/agb-z|01234567"
LAUNCH_SCOPE = "openid fhirUser launch/patient offline_access patient/*.cruds"


@pytest.fixture()
def integrator(secure: dict[str, Any]) -> dict[str, Any]:
    services, security = secure["services"], secure["security"]
    load(services, demo_dossier(dt.date.today()), "test: the kit's gateway")
    account(security, "anna", "patient", "Patient/anna")
    launch, _ = security.server.new_app(
        name="Kit launch", kind="public", scopes=LAUNCH_SCOPE, redirect_uris=[REDIRECT]
    )
    security.store.save_app(launch)
    keys = (smart.new_key("RS384"), smart.new_key("ES384"))
    backend, _ = security.server.new_app(
        name="HIS Zuid",
        kind="backend",
        scopes="system/*.rs",
        jwks={"keys": [k.as_dict(private=False) for k in keys]},
        organization_identifier=GP_AGB,
    )
    security.store.save_app(backend)
    options = Options(
        base_url=secure["base"],
        client_id=backend.client_id,
        keys=keys,
        patient_login=("anna", PASSWORD),
        launch_client_id=launch.client_id,
        redirect_uri=REDIRECT,
        timeout=30,
    )
    return {**secure, "options": options, "keys": keys}


def key_files(folder: pathlib.Path, keys: Any) -> pathlib.Path:
    """The backend app's private keys as the JWKS file an integrator keeps."""
    import json

    path = folder / "gp-private.json"
    path.write_text(json.dumps({"keys": [k.as_dict(private=True) for k in keys]}))
    return path
