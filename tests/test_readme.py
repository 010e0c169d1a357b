"""The README runs as written: each shell example against gateways it starts itself, and
each Python example on its own (set-up blocks, which start a gateway that keeps running,
are not run here; CI installs the package the way the set-up block says)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
BLOCKS = re.findall(r"```(sh|python)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
SHELL = [code for kind, code in BLOCKS if kind == "sh" and "serve --open\n" not in code]
SHELL = [code for code in SHELL if "scripts/test.sh" not in code]
PYTHON = [code for kind, code in BLOCKS if kind == "python"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="the examples use curl")
@pytest.mark.parametrize("code", SHELL, ids=[f"sh-{i}" for i in range(len(SHELL))])
def test_each_shell_example_runs(code: str, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "example.sh"
    script.write_text("set -euo pipefail\n" + code)
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a gateway left running by a failed example is ended below
    )
    try:
        stdout, stderr = process.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    assert process.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("code", PYTHON, ids=[f"py-{i}" for i in range(len(PYTHON))])
def test_each_python_example_runs_alone(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_examples_say_what_they_show() -> None:
    text = (ROOT / "README.md").read_text()
    assert "see `issues`" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):  # every link stays inside the clone
        if not target.startswith(("http://", "https://")):
            resolved = (ROOT / target).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), target
    assert len(SHELL) >= 3 and len(PYTHON) >= 4
