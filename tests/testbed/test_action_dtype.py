"""A remote policy that answers an action tensor of the wrong dtype is refused, never cast.

The server here is written against the generated stubs only (as a team in another language
would write one), so nothing on its side checks what it sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401  (registers the envs)
from protos.specs import Capabilities, PolicySpec, spec_to_proto
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from testbed.episodes.rollout import run_episode
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo, spaces_to_specs

WIRE = {
    "float64": pb.DTYPE_FLOAT64,
    "int32": pb.DTYPE_INT32,
    "int64": pb.DTYPE_INT64,
    "uint8": pb.DTYPE_UINT8,
    "bool": pb.DTYPE_BOOL,
}


class WrongDtypeServicer(pb_grpc.PolicyServiceServicer):
    """Accepts any session and answers every step with ones of `dtype` (full scale, suction on)."""

    def __init__(self, dtype: str, spec: pb.PolicySpec) -> None:
        self.dtype, self.spec = dtype, spec

    def OpenSession(self, request: pb.OpenSessionRequest, context: Any) -> Any:
        return pb.OpenSessionResponse(accepted=True, session_id="s-1", spec=self.spec)

    def GetSpec(self, request: Any, context: Any) -> Any:
        return self.spec

    def ResetSession(self, request: Any, context: Any) -> Any:
        return pb.ResetSessionResponse()

    def CloseSession(self, request: Any, context: Any) -> Any:
        return pb.CloseSessionResponse()

    def Act(self, request: pb.ActRequest, context: Any) -> pb.ActResponse:
        ones = np.ones(4, np.dtype(self.dtype)).tobytes()
        action = pb.Tensor(dtype=WIRE[self.dtype], shape=[4], data=ones)
        return pb.ActResponse(session_id=request.session_id, step=request.step, action=action)


class ActionLog(gymnasium.Wrapper):
    """Keeps every action the simulator received."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.actions: list[np.ndarray] = []

    def step(self, action: Any) -> Any:
        self.actions.append(np.array(action, copy=True))
        return super().step(action)


@pytest.fixture
def server_for() -> Iterator[Any]:
    started: list[grpc.Server] = []

    def start(dtype: str, env: gymnasium.Env) -> str:
        observation, action = spaces_to_specs(env.observation_space, env.action_space)
        named_only = Capabilities(packed_observations=False)  # it reads no packed observations
        spec = spec_to_proto(PolicySpec("wrong-dtype", "1", observation, action, named_only))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_PolicyServiceServicer_to_server(WrongDtypeServicer(dtype, spec), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        started.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop(grace=0)


@pytest.mark.parametrize("dtype", sorted(WIRE))
def test_wrong_dtype_action_is_recorded_and_never_executed(server_for: Any, dtype: str) -> None:
    env = ActionLog(gymnasium.make("Testbed/ConveyorSort-v0", site="kr-changwon"))
    remote = RemotePolicy(
        server_for(dtype, env),
        observation_space=env.observation_space,
        action_space=env.action_space,
        connect_timeout_s=2.0,
    )
    try:
        session = SessionInfo("dtype-test", "kr-changwon", "tests", 0, 3)
        result = run_episode(env, remote, session, max_steps=5)
    finally:
        remote.close()
        env.close()
    assert [kind for _, kind, _ in result.faults] == ["invalid_action:dtype"] * 5
    assert all(f"expected float32, got {dtype}" in message for _, _, message in result.faults)
    # The robot held position with suction off: nothing of the policy's answer was executed.
    assert len(env.actions) == 5
    assert all(not action.any() for action in env.actions)
