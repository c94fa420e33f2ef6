"""The executed course as a static web site: ``make book`` runs ``python -m mma_edu.book``.

The executed notebooks (``make tour`` writes them to build/, laptop profile) are laid out with a table of
contents and built by the Sphinx-based Jupyter Book 1 (``pip install 'mma-edu[site]'``; Jupyter Book 2
downloads its theme at build time and fails offline). Nothing is re-executed: the site shows the
outputs as the tour left them, widgets as their static pictures (the ``image/png`` each widget output
carries). Equations are typeset by MathJax 2 shipped with the site (from the ``jupyter-server-mathjax``
pip package, in the ``site`` extra), so the pages render them offline; without that package the pages load
MathJax from its CDN and, offline, show the TeX source.

Plotly figures (:class:`mma_edu.plots.Interactive`) stay interactive on the site: their output data becomes a
small HTML block that draws them with the one plotly.js the site carries (``_static/plotly.min.js``, copied from
the installed plotly package; about 52 KB pages instead of 4.9 MB with plotly.js inlined per page). No page asks
the network for anything: the widgets' JavaScript from a CDN is left out (widgets show their pictures).
An output the site cannot render is reported by Jupyter Book's warning, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

CONFIG = """title: mma-edu — margin maximization, hands on
author: the mma-edu course
only_build_toc_files: true
execute:
  execute_notebooks: "off"
parse:
  myst_enable_extensions: [dollarmath, amsmath]
sphinx:
  config:
    nb_output_stderr: remove
    # widgets as their static pictures: the live view needs a kernel (and JavaScript from a CDN)
    nb_mime_priority_overrides: [["*", "application/vnd.jupyter.widget-view+json", null]]
    html_show_copyright: false
    # no require.js and widget manager from a CDN: the widgets show their static pictures (no page goes online)
    nb_ipywidgets_js: {}
"""

# Appended to CONFIG when MathJax is copied into the site. It goes to the site's root through
# html_extra_path, not _static: Jupyter Book adds every .js file under _static to each page as a script.
# Sphinx reads a relative mathjax_path from _static, hence the "../".
LOCAL_MATHJAX = """    html_extra_path: ["_extra"]
    mathjax_path: ../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full
    # the package ships the STIX-Web fonts only (MathJax's default TeX fonts are not in it); the pages mark
    # their body tex2jax_ignore and their equations "math" (MathJax 3's processHtmlClass, here for MathJax 2)
    mathjax2_config:
      tex2jax: {processClass: "tex2jax_process|mathjax_process|math|output_area"}
      "HTML-CSS": {webFont: "STIX-Web", availableFonts: [], preferredFont: null, imageFont: null}
      SVG: {font: "STIX-Web"}
"""


def copy_mathjax(static: Path) -> bool:
    """Copy MathJax 2 (the ``jupyter-server-mathjax`` package) into ``static``/mathjax; False if not installed."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return False
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", static / "mathjax")
    return True


def copy_plotly(static: Path) -> None:
    """Copy the installed plotly package's plotly.js into ``static`` (Jupyter Book loads every .js there)."""
    import plotly

    static.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")


PLOTLY_MIME = "application/vnd.plotly.v1+json"
RECORD_MIME = "application/vnd.mma-edu.record+json"  # mma_edu.course.records: for the tests, shown as text/plain

PLOTLY_HTML = """<div id="{id}" class="mma-plotly" style="width:100%;height:{height}px"></div>
<script>(function () {{
  var fig = {fig};
  function draw() {{
    if (!window.Plotly) {{ return setTimeout(draw, 50); }}
    Plotly.newPlot("{id}", fig.data, fig.layout, fig.config);
  }}
  draw();
}})();</script>"""


def site_outputs(nb: dict, stem: str) -> dict:
    """The notebook with each output as the site shows it: a plotly figure as HTML drawn by the site's plotly.js
    (its PNG fallback left out), course records as their text/plain line."""
    k = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            data.pop(RECORD_MIME, None)
            fig = data.pop(PLOTLY_MIME, None)
            if fig is not None:
                k += 1
                height = int((fig.get("layout") or {}).get("height") or 450)
                text = json.dumps(fig, separators=(",", ":")).replace("</", "<\\/")
                data.pop("image/png", None)
                data["text/html"] = PLOTLY_HTML.format(id=f"plotly-{stem}-{k}", height=height, fig=text)
    return nb


def title(notebook: Path) -> str:
    """The notebook's first markdown heading, without the leading #."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return notebook.stem


def layout(notebooks: list[Path], src: Path) -> Path:
    """Write the book's sources: config, table of contents, an index page, the notebooks (copied)."""
    if not notebooks:
        raise ValueError("notebooks must name at least one executed notebook")
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for nb in notebooks:
        (src / nb.name).write_text(json.dumps(site_outputs(json.loads(nb.read_text()), nb.stem), indent=1))
    rows = "\n".join(f"- [{title(nb)}]({nb.stem}.ipynb)" for nb in notebooks)
    (src / "index.md").write_text("# The mma-edu course\n\nA notebook-first course on adversarial robustness by "
                                  "input-space margin maximization (MMA training, Ding et al., ICLR 2020), as "
                                  "executed by `make tour`.\n\n" + rows + "\n")
    local = copy_mathjax(src / "_extra")
    copy_plotly(src / "_static")
    (src / "_config.yml").write_text(CONFIG + (LOCAL_MATHJAX if local else ""))
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n"
                                  + "".join(f"- file: {nb.stem}\n" for nb in notebooks))
    return src


def build(notebooks: list[Path], out: Path) -> Path:
    """Build the site into ``out``; returns the folder of its HTML (``out/html``)."""
    src = layout(notebooks, out / "src")
    jb = Path(sys.executable).with_name("jupyter-book")  # the console script of this environment's jupyter-book
    subprocess.run([str(jb), "build", str(src), "--path-output", str(out)], check=True)
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(out / "_build" / "html", html)
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mma_edu.book", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="build", help="folder of the executed notebooks (make tour)")
    parser.add_argument("--out", default="build/book", help="where the site goes (its HTML in OUT/html)")
    args = parser.parse_args(argv)
    found = sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        print(f"no executed notebooks in {args.notebooks}/: run make tour first", file=sys.stderr)
        return 1
    html = build(found, Path(args.out))
    print(f"site: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
