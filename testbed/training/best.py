"""Keep the policy of the best evaluation during behaviour cloning (`BCConfig.keep_best`).

Closed-loop success of a clone can swing between evaluations while its loss falls steadily:
a policy on the edge of a gate (align, then descend) flips whole episodes. The parameters of
the best evaluation are kept in memory and restored at the end.
"""

from __future__ import annotations

import logging
import math

import torch
from stable_baselines3.common.policies import ActorCriticPolicy

logger = logging.getLogger(__name__)


class BestPolicy:
    """The policy parameters of the best evaluation so far (`BCConfig.keep_best`)."""

    def __init__(self) -> None:
        self.rate, self.step = -math.inf, 0
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, policy: ActorCriticPolicy, step: int, rate: float) -> None:
        """Keep the policy's parameters if `rate` is at least the best so far."""
        if rate >= self.rate:
            self.rate, self.step = rate, step
            self.state = {k: v.detach().clone() for k, v in policy.state_dict().items()}

    def restore(self, policy: ActorCriticPolicy) -> int:
        """Load the kept parameters into `policy`; the step they are from."""
        assert self.state is not None  # the last step is always evaluated
        policy.load_state_dict(self.state)
        logger.info("kept the policy of bc step %d (success %.2f)", self.step, self.rate)
        return self.step
