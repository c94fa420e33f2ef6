"""The executed course as a static web site: ``make book`` runs ``python -m mma_edu.book``.

The executed notebooks (``make tour`` writes them to build/, laptop profile) are laid out with a table of
contents and built by the Sphinx-based Jupyter Book 1 (``pip install 'mma-edu[site]'``; Jupyter Book 2
downloads its theme at build time and fails offline). Nothing is re-executed: the site shows the
outputs as the tour left them, widgets as their static pictures (the ``image/png`` each widget output
carries). Equations are typeset by MathJax 2 shipped with the site (from the ``jupyter-server-mathjax``
pip package, in the ``site`` extra), so the pages render them offline; without that package the pages load
MathJax from its CDN and, offline, show the TeX source.
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
    # the course's records (mma_edu.course) show as their text/plain line; their own MIME type is for tests
    suppress_warnings: ["mystnb.unknown_mime_type"]
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
        shutil.copy(nb, src / nb.name)
    rows = "\n".join(f"- [{title(nb)}]({nb.stem}.ipynb)" for nb in notebooks)
    (src / "index.md").write_text("# The mma-edu course\n\nA notebook-first course on adversarial robustness by "
                                  "input-space margin maximization (MMA training, Ding et al., ICLR 2020), as "
                                  "executed by `make tour`.\n\n" + rows + "\n")
    local = copy_mathjax(src / "_extra")
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
