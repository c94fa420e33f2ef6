"""The browser suite: JupyterLab (and the course site, the Voilà app) driven by Playwright in a system Chromium.

Runs only when asked (``pytest --browser tests/browser``; ``make test-browser`` runs all of it, ``make test``
the part marked ``quick``). Playwright's own browser download is not needed: the Chromium on PATH
(Debian's ``chromium`` package) is launched by path. Screenshots of failing tests land in build/browser/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
KERNEL = "mma-edu"
LAB_SETTINGS = ROOT / "jupyter" / "lab-settings"  # what `make lab` passes: JupyterLab saves widget state


def chromium_path() -> str | None:
    """The system Chromium: $MMA_EDU_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    for name in (os.environ.get("MMA_EDU_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def smoke_copy(src: Path, dst_dir: Path) -> Path:
    """The notebook with its parameters cell set to the smoke profile (what papermill does in the tests)."""
    nb = json.loads(src.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    text = "".join(cell["source"])
    assert 'profile = "laptop"' in text, src.name
    cell["source"] = text.replace('profile = "laptop"', 'profile = "smoke"', 1)
    out = dst_dir / src.name
    out.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return out


@contextmanager
def running_lab(jupyter_env: dict, nbdir: Path):
    """JupyterLab on a free port over the notebooks in ``nbdir``, configured as `make lab` does (widget state saved),
    every cell rendered (no virtual scrolling, so each output is in the DOM to be checked), the kernel's own
    matplotlib backend (inline, as for students). Yields an object with ``url`` and ``dir``; stops the server."""
    from servers import free_port, stop, wait_http

    settings = Path(jupyter_env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port = free_port()
    log = open(nbdir.parent / f"lab-{port}.log", "w")
    env = {k: v for k, v in jupyter_env.items() if k != "MPLBACKEND"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", f"--notebook-dir={nbdir}", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
         "--allow-root", "--ServerApp.disable_check_xsrf=True", f"--LabApp.app_settings_dir={LAB_SETTINGS}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/lab", proc)
        yield type("Lab", (), {"url": url, "dir": nbdir})
    finally:
        stop(proc)
        log.close()


def pytest_collection_modifyitems(config, items):
    import importlib.util

    reason = None
    if chromium_path() is None:
        reason = "no Chromium found (apt-get install chromium, or set MMA_EDU_CHROMIUM)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "Playwright is not installed (pip install 'mma-edu[browser]')"
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory) -> dict:
    """Environment for servers: a kernelspec `mma-edu` running this interpreter, and private config dirs."""
    from ipykernel.kernelspec import install

    base = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, display_name="mma-edu (browser tests)", prefix=str(base / "prefix"))
    env = dict(os.environ)
    env.update({
        "JUPYTER_PATH": str(base / "prefix" / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
        except Exception:  # the page may be gone; the failure itself is what matters
            pass
    ctx.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
