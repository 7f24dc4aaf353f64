"""What a model team writes to put its policy on the testbed: a class and one `serve()` call.

Run it:  python examples/team_policy.py --address 0.0.0.0:50051 --token-file team.token
Check it: testbed check-policy HOST:50051 --token-file team.token
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from policies import Capabilities, FieldSpec, PolicySpec, SessionInfo, serve

OBSERVATION = ("ee_pos", "part_pos", "part_vel", "holding", "bin_pos")
SIZES = {"ee_pos": 3, "part_pos": 3, "part_vel": 3, "holding": 1, "bin_pos": 3}


class ReachPolicy:
    """Move the tool toward the part (or the bin while holding one), suction on near the part."""

    def spec(self) -> PolicySpec:
        return PolicySpec(
            policy_id="team-reach",
            version="0.1.0",
            observation={n: FieldSpec((SIZES[n],), "float32", -3.0, 3.0) for n in OBSERVATION},
            action=FieldSpec((4,), "float32", -1.0, 1.0),
            capabilities=Capabilities(streaming=True, batching=True),
        )

    def reset(self, session: SessionInfo) -> None:
        pass  # no per-episode state

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        holding = observation["holding"][0] > 0.5
        target = observation["bin_pos"] if holding else observation["part_pos"]
        delta = np.clip((target - observation["ee_pos"]) * 5.0, -1.0, 1.0)
        near = float(np.linalg.norm(target - observation["ee_pos"])) < 0.02
        suction = 1.0 if (not holding and near) or (holding and not near) else -1.0
        return np.append(delta, suction).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--token-file", type=Path)
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else None
    server = serve(ReachPolicy(), args.address, token=token)
    server.stop_on_signals()
    print(f"serving {server.address}", flush=True)
    server.wait()


if __name__ == "__main__":
    main()
