"""`make app`: Voilà serves the explorers as a standalone page; in Chromium every widget shows its picture and
its controls respond."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest

from servers import free_port, stop, wait_http

from .conftest import ROOT, smoke_copy
from .test_lab import BROKEN, PICTURE_JS


@pytest.mark.skipif(importlib.util.find_spec("voila") is None,
                    reason="voila is not installed (pip install 'mma-edu[app]')")
def test_app_serves_the_explorers_and_they_respond(page, jupyter_env, tmp_path):
    assert "app/explorers.ipynb" in (ROOT / "Makefile").read_text()  # what make app serves
    nb = smoke_copy(ROOT / "app" / "explorers.ipynb", tmp_path)
    port = free_port()
    with open(tmp_path / "voila.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "voila", str(nb), "--no-browser", f"--port={port}",
                                 "--Voila.ip=127.0.0.1", f"--Voila.root_dir={tmp_path}",
                                 "--VoilaConfiguration.progressive_rendering=True"],  # as make app
                                env=jupyter_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=tmp_path)
        try:
            wait_http(f"http://127.0.0.1:{port}/", proc)
            started = time.time()
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            # The page shows at once and the first explorer (the playground, no training) within 10 s.
            page.wait_for_function("() => { const i = document.querySelector('img.widget-image');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
            first = time.time() - started
            print(f"\nVoilà: first explorer shown after {first:.1f} s")
            assert first <= 10, f"the first explorer took {first:.1f} s"
            deadline = time.time() + 180
            while True:
                imgs = page.locator("img.widget-image").all()
                pics = [i.evaluate(PICTURE_JS.replace("el.querySelector('img.widget-image')", "el")) for i in imgs]
                if len(pics) == 4 and all(pics):
                    break
                assert time.time() < deadline, f"{len(pics)} pictures: {pics}"
                time.sleep(1)
            text = page.inner_text("body")
            assert not any(b in text for b in BROKEN) and "Traceback" not in text
            # Pictures at their natural size (a flex column used to stretch them 3.8x in Voilà).
            scale = page.eval_on_selector_all("img.widget-image",
                                              "els => els.map(e => e.getBoundingClientRect().width / e.naturalWidth)")
            assert max(scale) <= 1.1, scale
            # The MNIST explorer's plotly figure is drawn (plotly's JupyterLab extension, in Voilà).
            page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(p => p._fullLayout)",
                                   timeout=120_000)
            # Move the playground's point and the step-through's slider: their pictures change.
            page.locator("select").first.select_option("4")
            readouts = page.locator(".widget-readout")
            for target, (picture, readout, value) in {"playground": (0, None, None),
                                                      "step": (2, readouts.nth(4), "3")}.items():
                if readout is not None:
                    readout.click()
                    page.keyboard.press("ControlOrMeta+a")
                    page.keyboard.type(value)
                    page.keyboard.press("Enter")
                deadline = time.time() + 60
                while imgs[picture].evaluate(PICTURE_JS.replace("el.querySelector('img.widget-image')", "el")) \
                        == pics[picture]:
                    assert time.time() < deadline, f"the {target} picture did not change"
                    time.sleep(0.3)
        finally:
            stop(proc)
