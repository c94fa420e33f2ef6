"""Execute every course notebook headless with papermill and print a table of the results.

``make tour`` runs ``python -m mma_edu.tour --out build``: each notebook in
``notebooks/`` runs with its default parameters (or ``--profile``) in a fresh
kernel, its executed copy lands in ``build/``, and a table of notebook,
seconds and status follows. Exit status 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

KERNEL = "mma-edu"


def kernel_problem(name: str = KERNEL) -> str | None:
    """Why the Jupyter kernel ``name`` cannot start, in one line with the fix, or None if it looks runnable.

    The course's kernel is user-global: another checkout (or a CI run in another folder) may have registered it
    last, with a Python that is gone. papermill would then fail on every notebook with a bare "No such file".
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return (f"no Jupyter kernel named {name!r}: register it with `make lab` (or "
                f"`python -m ipykernel install --user --name {name}` from this checkout's .venv)")
    exe = spec.argv[0] if spec.argv else ""
    if Path(exe).is_absolute() and not Path(exe).exists():
        return (f"the Jupyter kernel {name!r} runs {exe}, which does not exist (registered by another checkout?): "
                f"register it again from this one with `make lab` (or `python -m ipykernel install --user "
                f"--name {name}`)")
    return None


def notebooks(folder: str | Path = "notebooks") -> list[Path]:
    """The course notebooks in reading order (their file names start with the number)."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def claims(executed: Path) -> str:
    """"k hold, m do not" over the claims (``course.check``) an executed notebook recorded; "" if none."""
    from .course import read_records

    try:
        records = read_records(executed)
    except (OSError, ValueError):
        return ""
    checks = [v for k, v in records.items() if k.startswith("check: ")]
    if not checks:
        return f"{len(records)} records" if records else ""
    held = sum(bool(v) for v in checks)
    return f"claims: {held} hold" + (f", {len(checks) - held} do not" if held < len(checks) else "")


def run_notebook(path: Path, out_dir: Path, parameters: dict | None = None, kernel: str | None = None,
                 timeout: int | None = None) -> tuple[float, str]:
    """Execute one notebook; returns (seconds, "ok" or the error's first line)."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(out_dir / path.name), parameters=parameters or {}, kernel_name=kernel,
            cwd=str(path.parent), progress_bar=False, execution_timeout=timeout,
        )
        status = "ok"
    except Exception as err:  # report every notebook, then fail at the end
        status = f"FAILED: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
    return time.perf_counter() - start, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mma_edu.tour", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="notebooks", help="folder of the course notebooks")
    parser.add_argument("--out", default="build", help="folder for the executed copies (default: build)")
    parser.add_argument("--profile", default=None, help="override each notebook's profile (smoke, laptop, paper)")
    parser.add_argument("--kernel", default=KERNEL, help=f"Jupyter kernel to run them in (default: {KERNEL})")
    args = parser.parse_args(argv)
    problem = kernel_problem(args.kernel)
    if problem:
        parser.error(problem)
    books = notebooks(args.notebooks)
    if not books:
        print(f"no notebooks found in {args.notebooks}/")
        return 0
    params = {"profile": args.profile} if args.profile else {}
    rows = []
    for nb in books:
        print(f"running {nb.name} ...", flush=True)
        rows.append((nb.name, *run_notebook(nb, Path(args.out), params, args.kernel)))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'notebook':<{width}}  {'seconds':>8}  status  (headline records: mma_edu.course)")
    for name, sec, status in rows:
        print(f"{name:<{width}}  {sec:8.1f}  {status}  {claims(Path(args.out) / name)}".rstrip())
    return 0 if all(r[2] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
