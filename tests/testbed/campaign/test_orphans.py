"""A campaign killed with SIGKILL leaves no managed policy server running.

Managed servers run in their own session, so killing the campaign's process group does not
reach them; they must end on their own when the process that started them dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import FAST


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[int(entry.name)] = (int(stat[1]), stat[0], cmdline)
    return found


def _servers_under(ancestor: int) -> list[int]:
    """Serving ``testbed serve`` processes descending from ``ancestor``."""
    table = _processes()

    def descends(pid: int) -> bool:
        for _ in range(64):  # bounded walk up the tree
            pid = table.get(pid, (0, "", ""))[0]
            if pid in (0, 1) or pid == ancestor:
                return pid == ancestor
        return False

    return [pid for pid, (_, _, cmd) in table.items() if "testbed serve" in cmd and descends(pid)]


def _alive(pid: int) -> bool:
    state = _processes().get(pid, (0, "X", ""))[1]
    return state not in ("X", "Z")  # gone, or dead and waiting for init to reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("launcher", [[], ["-m", "hydra/launcher=local"]], ids=["basic", "joblib"])
def test_killing_a_campaign_group_ends_its_managed_servers(
    launcher: list[str], tmp_path: Path
) -> None:
    campaign_dir = tmp_path / "c"
    campaign = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", *launcher, *FAST, "policy=scripted_kr",
         "campaign.episodes=3", "task.max_steps=null", "campaign.report=false",
         f"campaign.dir={campaign_dir}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and campaign.poll() is None:
            logs = list(campaign_dir.glob("*/policy_server.log"))
            if any("serving" in log.read_text() for log in logs):
                servers = _servers_under(campaign.pid)
                if servers:
                    break
            time.sleep(0.05)
        assert servers, "the campaign never started its policy server"
        os.killpg(campaign.pid, signal.SIGKILL)  # the campaign and its workers, not the servers
        campaign.wait(10)
        end = time.monotonic() + 10
        while time.monotonic() < end and any(_alive(pid) for pid in servers):
            time.sleep(0.05)
        assert not [pid for pid in servers if _alive(pid)], "orphaned policy servers"
    finally:
        if campaign.poll() is None:
            os.killpg(campaign.pid, signal.SIGKILL)
            campaign.wait(10)
        for pid in servers:  # never leave one behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
