"""What cloning a CNN from a few hundred image demonstrations needs besides the action loss.

A CNN cloned from few demonstrations sees each part position only a few hundred times, and
fitting actions alone lets it memorise the frames instead of finding the part. Two remedies,
both off unless `testbed.training.config.BCConfig` asks for them:

- random shifts of each training image (`shifted`, ``bc.image_shift_px``; DrQ, Kostrikov et
  al. 2020);
- auxiliary targets (`Auxiliary`, ``bc.aux_keys``): the features also predict fields the
  demonstrations recorded but the policy does not read (``part_pos``), which makes the CNN
  localise (privileged auxiliary targets, as in asymmetric imitation). The head is a linear
  layer on the extractor's output, trained with the policy and dropped afterwards: the saved
  model is an ordinary SB3 model that reads pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from testbed.training.standardization import Standardization


@dataclass
class Auxiliary:
    """A linear head on the features and its standardised targets.

    Attributes:
        head: Features -> predicted (standardised) fields.
        train: Targets of the training transitions ``(N, D)``.
        valid: Targets of the held-out transitions.
        weight: Weight of the loss against the action loss.
    """

    head: torch.nn.Linear
    train: torch.Tensor
    valid: torch.Tensor
    weight: float

    @classmethod
    def build(
        cls,
        observations: Mapping[str, np.ndarray],
        keys: Sequence[str],
        features_dim: int,
        held_out: np.ndarray,
        weight: float,
        seed: int,
    ) -> Auxiliary:
        """Targets of ``keys`` (flattened, standardised on the training transitions) and a head.

        Args:
            observations: The demonstrations' fields, ``(N, ...)`` each.
            keys: The fields to predict.
            features_dim: Width of the features extractor's output.
            held_out: ``(N,)`` True for the validation transitions.
            weight: Weight of the loss.
            seed: Seeds the head's initial weights.
        """
        values = np.concatenate(
            [
                np.asarray(observations[k], dtype=np.float32).reshape(len(held_out), -1)
                for k in keys
            ],
            axis=1,
        )
        targets = torch.as_tensor(values)
        scaling = Standardization.of(targets[torch.as_tensor(~held_out)])
        scaled = scaling.apply(targets)
        head = torch.nn.Linear(features_dim, values.shape[1])
        with torch.no_grad():
            init = torch.Generator().manual_seed(seed)
            bound = 1.0 / features_dim**0.5
            head.weight.uniform_(-bound, bound, generator=init)
            head.bias.zero_()
        mask = torch.as_tensor(held_out)
        return cls(head, scaled[~mask], scaled[mask], weight)

    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Weighted mean squared error of the head's prediction from ``features``."""
        return self.weight * torch.nn.functional.mse_loss(self.head(features), targets)


def image_keys(policy: ActorCriticPolicy) -> dict[str, bool]:
    """The observation fields SB3 treats as images, each with whether it is channel-first."""
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )

    spaces = getattr(policy.observation_space, "spaces", {})
    return {
        key: is_image_space_channels_first(space)
        for key, space in spaces.items()
        if is_image_space(space)
    }


def shifted(
    inputs: dict[str, torch.Tensor],
    keys: Mapping[str, bool],
    pad: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Each image of the batch padded by ``pad`` (edges repeated), cropped at a random offset.

    ``keys``: the image fields, each with whether it is channel-first in the model's layout
    (the result keeps the layout); values stay 0..255, as float.
    """
    out = dict(inputs)
    for key, channels_first in keys.items():
        images = inputs[key] if channels_first else inputs[key].permute(0, 3, 1, 2)
        count, _, height, width = images.shape
        padded = torch.nn.functional.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
        offsets = torch.randint(2 * pad + 1, (count, 2), generator=generator).tolist()
        shifted = torch.stack(
            [padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)]
        )
        out[key] = shifted if channels_first else shifted.permute(0, 2, 3, 1)
    return out
