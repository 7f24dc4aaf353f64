"""Image fields over gRPC (issue 18): raw uint8 (named and packed) and PNG-encoded (named)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import gymnasium as gym
import numpy as np
import pytest

from policies import serve
from protos.specs import Capabilities, PolicySpec, SessionInfo
from testbed.errors import PolicyProtocolError
from testbed.link.client import RemotePolicy
from testbed.link.policy import spaces_to_specs

OBS = gym.spaces.Dict(
    {
        "ee_pos": gym.spaces.Box(-3.0, 3.0, (3,), np.float32),
        "image": gym.spaces.Box(0, 255, (24, 32, 3), np.uint8),
    }
)
ACT = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


class PixelPolicy:
    """Acts on exact pixel values, so a lossy or shifted image changes the action."""

    def __init__(self) -> None:
        observation, action = spaces_to_specs(OBS, ACT)
        self._spec = PolicySpec("pixels", "1", observation, action, Capabilities(max_batch=8))
        self.seen: list[np.ndarray] = []

    def spec(self) -> PolicySpec:
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        pass

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        image = np.asarray(observation["image"])
        self.seen.append(image.copy())
        weights = np.arange(image.size, dtype=np.float64).reshape(image.shape) % 7
        return np.array(
            [np.tanh(float((image * weights).sum()) / 1e6), image[0, 0, 0] / 255.0, 0.0, 0.0],
            np.float32,
        )

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        return [self.act(s, o) for s, o in zip(sessions, observations, strict=True)]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, PixelPolicy]]:
    policy = PixelPolicy()
    server = serve(policy, "127.0.0.1:0")
    assert server.wait_until_serving(30)
    try:
        yield server.address, policy
    finally:
        server.stop(0)


def _observation(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = np.zeros((24, 32, 3), np.uint8)
    image[4:20, 6:26] = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    return {"ee_pos": rng.uniform(-1, 1, 3).astype(np.float32), "image": image}


@pytest.mark.parametrize("mode", ["unary", "stream", "batch"])
@pytest.mark.parametrize(
    ("form", "encoding"), [("packed", "raw"), ("named", "raw"), ("auto", "png")]
)
def test_the_policy_sees_the_exact_image(
    served: tuple[str, PixelPolicy], mode: str, form: str, encoding: str
) -> None:
    address, policy = served
    session = SessionInfo(f"img-{mode}-{form}-{encoding}", seed=0)
    with RemotePolicy(address, observation_space=OBS, action_space=ACT, mode=mode,  # type: ignore[arg-type]
                      observation_form=form, image_encoding=encoding) as remote:  # type: ignore[arg-type]  # fmt: skip
        remote.reset(session)
        assert remote.uses_packed(session) == (form == "packed")
        for step in range(3):
            observation = _observation(step)
            if mode == "batch":
                [action] = remote.act_batch([session], [observation])
            else:
                action = remote.act(session, observation)
            np.testing.assert_array_equal(policy.seen[-1], observation["image"])  # lossless
            np.testing.assert_array_equal(action, PixelPolicy().act(session, observation))


def test_png_requests_are_smaller_and_bad_images_are_named(
    served: tuple[str, PixelPolicy],
) -> None:
    address, _ = served
    session = SessionInfo("img-errors", seed=0)
    with RemotePolicy(address, observation_space=OBS, action_space=ACT,
                      image_encoding="png") as remote:  # fmt: skip
        remote.reset(session)
        remote.act(session, _observation(0))
        request = remote._sessions[session.session_id].request  # the reused ActRequest
        assert request.observation["image"].encoding == 1  # ENCODING_PNG
        assert len(request.observation["image"].data) < 24 * 32 * 3
        wrong = {**_observation(1), "image": np.zeros((24, 32, 4), np.uint8)}
        with pytest.raises(
            PolicyProtocolError,
            match=r"observation.image: expected uint8\[24, 32, 3\], got uint8\[24, 32, 4\]",
        ):
            remote.act(session, wrong)
    with pytest.raises(ValueError, match="image_encoding 'png' travels in the named form only"):
        RemotePolicy(address, observation_form="packed", image_encoding="png")
    with pytest.raises(ValueError, match=r"image_encoding: expected one of \('raw', 'png'\)"):
        RemotePolicy(address, image_encoding="jpeg")  # type: ignore[arg-type]


def test_campaign_config_names_a_bad_image_encoding() -> None:
    from tests.testbed.campaign.helpers import FAST, compose

    with pytest.raises(
        ValueError, match=r"policy.image_encoding: expected one of \('raw', 'png'\)"
    ):
        compose([*FAST, "policy.image_encoding=jpeg"])
    with pytest.raises(ValueError, match="'png' travels in the named form only"):
        compose([*FAST, "policy.image_encoding=png", "policy.observation_form=packed"])
    assert compose([*FAST, "policy.image_encoding=png"]).policy.image_encoding == "png"


class RawOnlyPolicy(PixelPolicy):
    """A policy whose server decodes no image encoding (as a team without an image library)."""

    def __init__(self) -> None:
        super().__init__()
        observation, action = spaces_to_specs(OBS, ACT)
        caps = Capabilities(max_batch=8, image_encodings=())
        self._spec = PolicySpec("pixels-raw", "1", observation, action, caps)


def test_image_encodings_are_negotiated_in_the_handshake(
    served: tuple[str, PixelPolicy],
) -> None:
    """The SDK server lists PNG and JPEG; a server that lists none gets raw images or no session."""
    from protos.v1 import policy_service_pb2 as pb
    from protos.v1 import policy_service_pb2_grpc as pb_grpc
    from testbed.errors import PolicyHandshakeError

    address, _ = served
    with RemotePolicy(address, observation_space=OBS, action_space=ACT) as remote:
        assert remote.spec().capabilities.image_encodings == ("png", "jpeg")
    server = serve(RawOnlyPolicy(), "127.0.0.1:0")
    assert server.wait_until_serving(30)
    try:
        session = SessionInfo("img-raw-only", seed=0)
        with RemotePolicy(server.address, observation_space=OBS, action_space=ACT,
                          image_encoding="png") as remote:  # fmt: skip
            with pytest.raises(PolicyHandshakeError) as refused:
                remote.reset(session)
        assert "does not decode PNG images" in str(refused.value)
        assert refused.value.field_errors == [
            ("capabilities.image_encodings", "some of [none]", "PNG")
        ]
        with RemotePolicy(server.address, observation_space=OBS, action_space=ACT) as remote:
            remote.reset(session)  # raw images still work
            remote.act(session, _observation(0))
        # A client that skips the check: OpenSession names the capability, and a PNG image
        # sent anyway is INVALID_ARGUMENT on the field's encoding.
        import grpc

        from protos.specs import field_to_proto
        from protos.tensors import to_tensor

        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.PolicyServiceStub(channel)
            observation, action = spaces_to_specs(OBS, ACT)
            request = pb.OpenSessionRequest(
                observation=[field_to_proto(n, f) for n, f in observation.items()],
                action=field_to_proto("action", action), protocol_version="1.1",
                capabilities=pb.Capabilities(image_encodings=[pb.ENCODING_PNG]),
            )  # fmt: skip
            reply = stub.OpenSession(request, timeout=5)
            assert not reply.accepted
            assert [(e.field, e.got) for e in reply.errors] == [
                ("capabilities.image_encodings", "[PNG]")
            ]
            del request.capabilities.image_encodings[:]
            reply = stub.OpenSession(request, timeout=5)
            assert reply.accepted
            step = pb.ActRequest(session_id=reply.session_id, step=0)
            values = _observation(0)
            step.observation["ee_pos"].CopyFrom(to_tensor(values["ee_pos"]))
            step.observation["image"].CopyFrom(to_tensor(values["image"], pb.ENCODING_PNG))
            with pytest.raises(grpc.RpcError) as bad:
                stub.Act(step, timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "observation.image.encoding: expected RAW, got PNG" in bad.value.details()
    finally:
        server.stop(0)


def test_an_unknown_image_encoding_name_is_refused_when_the_spec_is_made() -> None:
    with pytest.raises(ValueError, match=r"image_encodings: expected some of \('png', 'jpeg'\)"):
        Capabilities(image_encodings=("gif",))


def test_a_1_0_server_lists_no_image_encoding_so_png_is_refused_and_raw_works() -> None:
    from testbed.errors import PolicyHandshakeError
    from tests.protos.v1_0 import AsServer10

    server = serve(PixelPolicy(), "127.0.0.1:0", interceptors=[AsServer10()])
    assert server.wait_until_serving(30)
    session = SessionInfo("img-1.0", seed=0)
    try:
        with RemotePolicy(server.address, observation_space=OBS, action_space=ACT,
                          image_encoding="png") as remote:  # fmt: skip
            assert remote.spec().capabilities.image_encodings == ()
            with pytest.raises(PolicyHandshakeError, match="capabilities.image_encodings"):
                remote.reset(session)
        with RemotePolicy(server.address, observation_space=OBS, action_space=ACT) as remote:
            remote.reset(session)
            remote.act(session, _observation(0))
    finally:
        server.stop(0)
