"""Policy servers in a subprocess (``testbed serve``), for tests that kill or signal them."""

from __future__ import annotations

import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_cli_server(*args: str, timeout_s: float = 30.0) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m testbed serve ARGS --address 127.0.0.1:0``; return it and its address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "serve", *args, "--address", "127.0.0.1:0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and process.poll() is None:
        if selector.select(timeout=0.1):
            match = re.search(r"serving (\S+:\d+)", process.stdout.readline())
            if match:
                return process, match.group(1)
    process.kill()
    process.wait(5)
    raise AssertionError(f"testbed serve {' '.join(args)} did not report its address")


def stop(process: subprocess.Popen[str]) -> None:
    """Kill the server if it is still running (bounded wait)."""
    if process.poll() is None:
        process.kill()
    process.wait(10)
