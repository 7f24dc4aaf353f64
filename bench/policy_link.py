"""Policy link latency: the testbed's Act paths against a bare grpcio echo, in one run.

    .venv/bin/python bench/policy_link.py [--quick]

Payload: the ConveyorSort observation (10 float32 fields, 28 floats) -> a 4-float action. The
bare echo sends the same raw bytes through generic handlers (no protobuf), so the ratio shows
what the contract (typed tensors, sessions, validation) costs on top of gRPC itself.
"""

from __future__ import annotations

import argparse
import functools
import queue
import sys
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path

import grpc
import gymnasium
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies import Capabilities, PolicySpec, SessionInfo, serve  # noqa: E402
from testbed.policy import spaces_to_specs  # noqa: E402
from testbed.policy_client import RemotePolicy  # noqa: E402

SIZES = {"ee_pos": 3, "ee_vel": 3, "gripper": 1, "holding": 1, "part_pos": 3, "part_vel": 3,
         "part_size": 3, "part_type": 4, "bin_pos": 3, "time": 1}  # fmt: skip
OBS_SPACE = gymnasium.spaces.Dict(
    {n: gymnasium.spaces.Box(-5.0, 5.0, (k,), np.float32) for n, k in SIZES.items()}
)
ACT_SPACE = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
BATCH = 8


class TinyPolicy:
    """A near-free policy, so the numbers measure the link, not the model."""

    def __init__(self) -> None:
        observation, action = spaces_to_specs(OBS_SPACE, ACT_SPACE)
        self._spec = PolicySpec("tiny", "1", observation, action, Capabilities(max_batch=64))
        self._action = np.zeros(4, np.float32)

    def spec(self) -> PolicySpec:
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        pass

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._action


def _echo_server() -> tuple[grpc.Server, str]:
    reply = np.zeros(4, np.float32).tobytes()

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return reply

    def stream(requests: object, context: grpc.ServicerContext) -> object:
        for _ in requests:  # type: ignore[attr-defined]
            yield reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _time(step: Callable[[], object], steps: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        step()
    out = np.empty(steps)
    clock = time.perf_counter
    for i in range(steps):
        start = clock()
        step()
        out[i] = clock() - start
    return out * 1000.0


def _bare(address: str, payload: bytes, steps: int, warmup: int) -> dict[str, np.ndarray]:
    channel = grpc.insecure_channel(address)
    unary = channel.unary_unary("/bench.Echo/Unary")
    results = {"bare echo unary": _time(lambda: unary(payload, timeout=5), steps, warmup)}
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    replies = channel.stream_stream("/bench.Echo/Stream")(iter(requests.get, None))

    def exchange() -> bytes:
        requests.put(payload)
        return next(replies)

    results["bare echo stream"] = _time(exchange, steps, warmup)
    requests.put(None)
    channel.close()
    return results


def _testbed(address: str, obs: dict[str, np.ndarray], steps: int, warmup: int) -> dict:
    results = {}
    for mode in ("unary", "stream"):
        with RemotePolicy(address, observation_space=OBS_SPACE, action_space=ACT_SPACE,
                          mode=mode, deadline_s=5.0) as remote:  # fmt: skip
            session = SessionInfo(f"bench-{mode}", seed=0)
            remote.reset(session)
            step = functools.partial(remote.act, session, obs)
            results[f"testbed {mode} Act"] = _time(step, steps, warmup)
    with RemotePolicy(address, observation_space=OBS_SPACE, action_space=ACT_SPACE,
                      mode="batch", deadline_s=5.0) as remote:  # fmt: skip
        sessions = [SessionInfo(f"bench-batch-{i}", seed=i) for i in range(BATCH)]
        for session in sessions:
            remote.reset(session)
        observations = [obs] * BATCH
        per_call = _time(lambda: remote.act_batch(sessions, observations), steps, warmup)
        results[f"testbed ActBatch x{BATCH} (per episode-step)"] = per_call / BATCH
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps (CI smoke run)")
    args = parser.parse_args()
    steps, warmup = (500, 50) if args.quick else (5000, 300)
    rng = np.random.default_rng(0)
    obs = {n: rng.uniform(-1, 1, k).astype(np.float32) for n, k in SIZES.items()}
    payload = np.concatenate(list(obs.values())).tobytes()

    policy = TinyPolicy()
    session = SessionInfo("in-process", seed=0)
    results = {"in-process act": _time(lambda: policy.act(session, obs), steps, warmup)}
    echo, echo_address = _echo_server()
    results.update(_bare(echo_address, payload, steps, warmup))
    server = serve(policy, "127.0.0.1:0")
    server.wait_until_serving(10)
    results.update(_testbed(server.address, obs, steps, warmup))
    server.stop(grace=0)
    echo.stop(0)
    _report(results, steps)


def _report(results: dict[str, np.ndarray], steps: int) -> None:
    base_unary = np.median(results["bare echo unary"])
    base_stream = np.median(results["bare echo stream"])
    table = Table(title=f"policy link round trip, {steps} steps per mode (ms)")
    for column in ("mode", "p50", "p99", "p50 vs bare echo", "goal"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    goals = {"testbed unary Act": ("unary", 1.3), "testbed stream Act": ("stream", 1.3)}
    for name, samples in results.items():
        p50, p99 = np.percentile(samples, [50, 99])
        ratio, goal = "", ""
        if name in goals:
            base = base_unary if goals[name][0] == "unary" else base_stream
            ok = p50 / base <= goals[name][1]
            ratio = f"{p50 / base:.2f}x ({goals[name][0]})"
            goal = f"[{'green' if ok else 'red'}]<= 1.3x"
        elif name.startswith("testbed ActBatch"):
            ratio = f"{p50 / base_unary:.2f}x (unary)"
            goal = f"[{'green' if p50 < 0.1 else 'red'}]< 0.1 ms"
        table.add_row(name, f"{p50:.4f}", f"{p99:.4f}", ratio, goal)
    Console().print(table)


if __name__ == "__main__":
    main()
