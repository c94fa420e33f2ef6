"""Local servers the tests start (JupyterLab, Voilà, a checkpoint server): a free port, waiting for an answer,
stopping the server and its children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[:3]} exited: {proc.stdout.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server we started, and its children (it runs in its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
