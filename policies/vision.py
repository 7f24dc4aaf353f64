"""Features extractors for pixels-in SB3 policies: a CNN whose features are image coordinates.

SB3's default for an image (`NatureCNN`) ends in a fully connected layer over a coarse feature
map (4x4 at 64x64 pixels): it says *what* is in the image far better than *where*. A
manipulation policy needs where: which pixel the part is on. `KeypointExtractor` ends its CNN
in a spatial soft-argmax instead (Levine et al., "End-to-End Training of Deep Visuomotor
Policies", JMLR 2016; robomimic's ``SpatialSoftmax``): each of its ``keypoints`` feature maps
becomes a probability distribution over the pixels, and the extractor outputs that
distribution's expected (x, y) image coordinates in [-1, 1]. A part that moves one pixel moves
the features by a fixed amount wherever it is, which a small MLP head can map to a motion.

Use it through SB3's ``policy_kwargs`` on a Dict observation space (`testbed train`:
``algo.features_extractor: policies.vision:KeypointExtractor``). A model saved with it
records the class by its import path, so the server that loads the model must be able to
import this module (``testbed serve sb3:`` can: it is part of the policies SDK).
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["KeypointExtractor", "SpatialSoftArgmax"]


class SpatialSoftArgmax(nn.Module):
    """Expected image coordinates of each channel's softmax over pixels.

    Input ``(B, C, H, W)``; output ``(B, 2C)``: for every channel its x then y in [-1, 1]
    (left/top = -1). The softmax temperature is learned (one scalar, initially 1).
    """

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = th.meshgrid(
            th.linspace(-1.0, 1.0, height), th.linspace(-1.0, 1.0, width), indexing="ij"
        )
        self.register_buffer("grid", th.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))
        self.log_temperature = nn.Parameter(th.zeros(()))

    def forward(self, maps: th.Tensor) -> th.Tensor:
        """``(B, C, H, W)`` maps -> ``(B, 2C)`` coordinates (x, y per channel)."""
        batch, channels = maps.shape[:2]
        logits = maps.reshape(batch, channels, -1) / self.log_temperature.exp()
        weights = th.softmax(logits, dim=-1)
        grid: th.Tensor = self.grid  # type: ignore[assignment]  # a registered buffer
        return (weights @ grid).reshape(batch, 2 * channels)


class _KeypointCNN(nn.Module):
    """Three convolutions (stride 2, 1, 1) then `SpatialSoftArgmax`: ``2 * keypoints`` features."""

    def __init__(self, space: gym.spaces.Box, channels: int, keypoints: int) -> None:
        super().__init__()
        n_input = int(space.shape[0])  # channel-first: SB3 transposes channel-last images
        self.convs = nn.Sequential(
            nn.Conv2d(n_input, channels, kernel_size=5, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(channels, keypoints, kernel_size=3),
        )
        with th.no_grad():
            height, width = self.convs(th.zeros(1, *space.shape)).shape[2:]
        self.argmax = SpatialSoftArgmax(int(height), int(width))

    def forward(self, image: th.Tensor) -> th.Tensor:
        return self.argmax(self.convs(image))


class KeypointExtractor(BaseFeaturesExtractor):
    """A Dict-space extractor: `_KeypointCNN` on every image field, the rest flattened.

    The features are the concatenation, in the space's key order, of each image's keypoint
    coordinates and each other field flattened (as SB3's ``CombinedExtractor``, with the
    keypoint CNN in place of ``NatureCNN``).

    Args:
        observation_space: A Dict space with at least one image field (uint8, channel-first
            after SB3's transpose).
        channels: Feature maps in the first two convolutions.
        keypoints: Keypoints per image (the features are twice that).

    Raises:
        ValueError: If the space holds no image field or a size is below 1.
    """

    def __init__(
        self, observation_space: gym.spaces.Dict, channels: int = 16, keypoints: int = 16
    ) -> None:
        if channels < 1 or keypoints < 1:
            raise ValueError(
                f"KeypointExtractor: expected channels, keypoints >= 1; got {channels}, {keypoints}"
            )
        super().__init__(observation_space, features_dim=1)
        extractors: dict[str, nn.Module] = {}
        size = 0
        for key, space in observation_space.spaces.items():
            if is_image_space(space):
                assert isinstance(space, gym.spaces.Box)
                extractors[key] = _KeypointCNN(space, channels, keypoints)
                size += 2 * keypoints
            else:
                extractors[key] = nn.Flatten()
                size += get_flattened_obs_dim(space)
        if not any(isinstance(m, _KeypointCNN) for m in extractors.values()):
            raise ValueError(
                f"KeypointExtractor: expected an image field (uint8, H x W x C) among "
                f"{sorted(observation_space.spaces)}, got none"
            )
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = size

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        """The features of a batch of observations (``(B, features_dim)``)."""
        return th.cat([module(observations[key]) for key, module in self.extractors.items()], dim=1)
