from __future__ import annotations

import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo
from tests.policies.doubles import action_space, observation_space, sample_observation

REPO = Path(__file__).resolve().parents[2]


def test_example_serves_and_acts_through_the_client(tmp_path: Path) -> None:
    token = tmp_path / "team.token"
    token.write_text("example-token\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "examples/team_policy.py",
            "--address",
            "127.0.0.1:0",
            "--token-file",
            str(token),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=30), "example did not start"
        address = re.search(r"serving (\S+)", process.stdout.readline()).group(1)
        with RemotePolicy(
            address,
            observation_space=observation_space(),
            action_space=action_space(),
            token="example-token",
        ) as remote:
            session = SessionInfo("e0", "kr-changwon", "example", 0, 1)
            remote.reset(session)
            observation = sample_observation(np.random.default_rng(0))
            action = remote.act(session, observation)
            expected = np.clip((observation["part_pos"] - observation["ee_pos"]) * 5, -1, 1)
            np.testing.assert_allclose(action[:3], expected, rtol=1e-6)
        process.terminate()  # SIGTERM: graceful shutdown, exit status 0
        start = time.monotonic()
        assert process.wait(10) == 0 and time.monotonic() - start < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
