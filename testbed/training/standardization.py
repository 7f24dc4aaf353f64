"""Input standardisation for behaviour cloning, folded into the actor afterwards.

`BCConfig.standardize` trains the actor on ``(x - mean) / std`` of the training inputs, then
moves the scaling into the actor's first linear layer, so the saved SB3 model reads raw
observations and needs no statistics beside it (why: `testbed.training.config.BCConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from stable_baselines3.common.policies import ActorCriticPolicy

__all__ = ["Standardization"]


@dataclass(frozen=True)
class Standardization:
    """Per-feature mean and standard deviation of the training inputs (`BCConfig.standardize`).

    The actor trains on ``(x - mean) / std``; `fold` then rewrites its first linear layer
    ``W z + b`` as ``(W / std) x + (b - W (mean / std))``, the same function of the raw ``x``,
    so the saved model needs no statistics beside it.
    """

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor) -> Standardization:
        """The statistics of ``features`` ``(N, D)``; a constant feature keeps a scale of 1."""
        mean = features.mean(dim=0)
        std = features.std(dim=0) if len(features) > 1 else torch.ones_like(mean)
        return cls(mean, torch.where(std > 1e-6, std, torch.ones_like(std)))

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` ``(N, D)`` standardised."""
        return (features - self.mean) / self.std

    def fold(self, policy: ActorCriticPolicy) -> None:
        """Move the scaling into the actor's first linear layer (the policy reads raw inputs)."""
        layer = _first_actor_layer(policy)
        with torch.no_grad():
            weight = layer.weight / self.std
            layer.bias.sub_(weight @ self.mean)
            layer.weight.copy_(weight)

    def folded(
        self, policy: ActorCriticPolicy, evaluate: Callable[[int], float]
    ) -> Callable[[int], float]:
        """``evaluate`` run with the scaling folded in (it steps the env on raw observations).

        The layer is restored exactly afterwards, so training goes on where it was.
        """

        def run(step: int) -> float:
            layer = _first_actor_layer(policy)
            weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
            self.fold(policy)
            try:
                return evaluate(step)
            finally:
                with torch.no_grad():
                    layer.weight.copy_(weight)
                    layer.bias.copy_(bias)

        return run


def _first_actor_layer(policy: ActorCriticPolicy) -> torch.nn.Linear:
    """The linear layer the actor's features go into first."""
    for layer in [*policy.mlp_extractor.policy_net, policy.action_net]:
        if isinstance(layer, torch.nn.Linear):
            return layer
    raise TypeError(f"behaviour cloning: no linear layer in the actor of {policy}")
