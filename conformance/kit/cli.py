"""``eigendossier conformance run|check|list``: the kit on the command line.

``run`` exits 0 only when every required check of the chosen suites passed, 1 when one did
not, and 2 for a mistake on the command line (an unknown suite, a key file that is not a
JWK). ``check`` exits 0 when every file is free of findings, else 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from conformance.kit import report
from conformance.kit.files import check_file
from conformance.kit.model import SUITES
from conformance.kit.runner import checks_of, passed, run
from conformance.kit.session import Options

__all__ = ["conformance_app"]

conformance_app = typer.Typer(
    help="The integrators' conformance kit: test a server, or check files, against what "
    "Eigen Dossier promises.",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _keys(files: list[Path]) -> tuple[RSAKey | ECKey, ...]:
    """Private keys from JWK or JWKS files (RS384: RSA, ES384: EC P-384)."""
    found: list[RSAKey | ECKey] = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            _fail(f"{file}: not a JSON key file ({type(error).__name__})")
        for jwk in data.get("keys", [data]) if isinstance(data, dict) else []:
            try:
                key = (RSAKey if jwk.get("kty") == "RSA" else ECKey).import_key(jwk)
            except (JoseError, ValueError, TypeError):
                _fail(f"{file}: a key that is not an RSA or EC private JWK")
            if not key.is_private:
                _fail(f"{file}: the key {jwk.get('kid', '')} is public; the kit signs with it")
            found.append(key)
    return tuple(found)


def _login(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    username, separator, file = value.partition(":")
    if not separator or not username or not file:
        _fail("--patient-login is USER:PASSWORD-FILE")
    try:
        password = Path(file).read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        _fail(f"--patient-login: cannot read a password from {file}")
    return username, password


@conformance_app.command("run")
def run_command(
    base_url: Annotated[str, typer.Option(help="The FHIR base URL of the server under test")],
    suite: Annotated[
        list[str] | None,
        typer.Option(help=f"Repeat for several; default all: {', '.join(SUITES)}"),
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="A backend app's client_id")] = None,
    key: Annotated[
        list[Path] | None,
        typer.Option(help="The backend app's private key: a JWK or JWKS file (repeatable)"),
    ] = None,
    patient_login: Annotated[
        str | None, typer.Option(help="A client's login: USER:PASSWORD-FILE")
    ] = None,
    launch_client_id: Annotated[
        str | None, typer.Option(help="A public app for the standalone launch")
    ] = None,
    redirect_uri: Annotated[str | None, typer.Option(help="That app's redirect URI")] = None,
    grantee: Annotated[
        str | None, typer.Option(help="Organization/ID the backend app acts for")
    ] = None,
    canonical_base: Annotated[
        str, typer.Option(help="The base of the profiles' canonical URLs")
    ] = "https://eigendossier.nl/fhir",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one answer")] = 20.0,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here")] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write the FHIR TestReport (JSON) here")
    ] = None,
) -> None:
    """Run the suites against a server over HTTP; exit 0 only when every required check
    passed."""
    suites = suite or list(SUITES)
    try:
        checks_of(suites)
    except ValueError as error:
        _fail(str(error))
    if not base_url.startswith(("http://", "https://")):
        _fail("--base-url is an http(s) URL")
    options = Options(
        base_url=base_url,
        client_id=client_id,
        keys=_keys(key or []),
        patient_login=_login(patient_login),
        launch_client_id=launch_client_id,
        redirect_uri=redirect_uri,
        grantee=grantee,
        canonical_base=canonical_base,
        timeout=timeout,
    )
    results = run(options, suites, progress=lambda r: typer.echo(report.line(r)))
    typer.echo("")
    typer.echo(report.console(results, base_url).split("\n\n", 1)[-1])
    if junit is not None:
        junit.write_bytes(report.junit_xml(results, base_url))
    if report_file is not None:
        report_file.write_text(json.dumps(report.test_report(results, base_url), indent=2))
    raise typer.Exit(0 if passed(results) else 1)


@conformance_app.command("check")
def check_command(
    files: Annotated[list[Path], typer.Argument(help="FHIR JSON, WMO323 XML or AW319 files")],
    canonical_base: Annotated[
        str, typer.Option(help="The base of the profiles' canonical URLs")
    ] = "https://eigendossier.nl/fhir",
) -> None:
    """Check files offline: FHIR resources and Bundles against R4 and our profiles, WMO323
    against its XSD and message rules, AW319 against its record layout and rules."""
    clean = True
    for file in files:
        kind, findings = check_file(file, canonical_base)
        if findings:
            clean = False
            typer.echo(f"FAIL  {file} ({kind}): {len(findings)} finding(s)")
            for finding in findings[:50]:
                typer.echo(f"      {finding.where}: {finding.message}")
        else:
            typer.echo(f"PASS  {file} ({kind})")
    raise typer.Exit(0 if clean else 1)


@conformance_app.command("list")
def list_command(
    markdown: Annotated[bool, typer.Option(help="As the table of docs/conformance.md")] = False,
) -> None:
    """Every check: id, suite, whether required, title, requirement and link."""
    if markdown:
        typer.echo(report.markdown_catalogue(), nl=False)
        return
    for check in checks_of(SUITES):
        required = "required" if check.required else "optional"
        typer.echo(f"{check.id}\t{check.suite}\t{required}\t{check.title}\t{check.link}")


def main() -> None:  # python -m conformance
    conformance_app(prog_name="conformance", args=sys.argv[1:])
