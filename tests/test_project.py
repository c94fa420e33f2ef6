"""The project as a new user meets it: install metadata, the conda file, `make lab`, the README."""

import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from servers import free_port, stop

ROOT = Path(__file__).resolve().parents[1]

# conda names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;:]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in meta["dependencies"]} | {_name(r) for r in meta["optional-dependencies"]["test"]}
    text = (ROOT / "environment.yml").read_text()
    block = text.split("dependencies:", 1)[1]
    conda = {_name(m) for m in re.findall(r"^\s+-\s+([A-Za-z][\w.-]*[^\n]*)$", block, flags=re.M)}
    conda = {CONDA_TO_PYPI.get(n, n) for n in conda} - {"python", "pip"}
    assert conda == pip_names, (sorted(conda - pip_names), sorted(pip_names - conda))


def test_torch_is_left_unpinned_above():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(d for d in deps if _name(d) == "torch")
    assert "<" not in torch_req and "==" not in torch_req


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme and "make tour" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_serves_the_notebooks(tmp_path):
    port = free_port()
    lab_args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
                f"--IdentityProvider.token= --ServerApp.password=")
    venv = Path(sys.prefix)
    # Run `make lab` itself when this interpreter is the project's .venv; otherwise the same
    # command from this environment (make would build a new .venv).
    if (venv / ".mma-edu-installed").exists():
        cmd = ["make", "-C", str(ROOT), "lab", f"VENV={venv}", f"LAB_ARGS={lab_args}"]
    else:
        cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={ROOT / 'notebooks'}", "--allow-root",
               *lab_args.split()]
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "PATH": "/usr/bin:/bin:" + str(venv / "bin"), "HOME": str(tmp_path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 90
        status, body = None, ""
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5) as resp:
                    status, body = resp.status, resp.read().decode("utf-8", "replace")
                    break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(1)
        assert status == 200, proc.stdout.read().decode() if proc.poll() is not None else "no answer"
        assert "JupyterLab" in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5) as resp:
            listing = resp.read().decode()
        assert "01_margins.ipynb" in listing or not list((ROOT / "notebooks").glob("*.ipynb"))
    finally:
        stop(proc)


def test_make_lab_saves_widget_state_into_notebooks():
    # A saved notebook reopened on a fresh kernel shows its widgets' pictures only if JupyterLab saved their
    # state (issue 13); make lab points JupyterLab at these settings, and the browser suite checks the effect.
    settings = json.loads((ROOT / "jupyter" / "lab-settings" / "overrides.json").read_text())
    assert settings["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
    make = (ROOT / "Makefile").read_text()
    assert "--LabApp.app_settings_dir=$(CURDIR)/jupyter/lab-settings" in make
    lab_recipe = make.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "$(LAB_SETTINGS)" in lab_recipe
