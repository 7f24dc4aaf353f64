from __future__ import annotations

from policies.protocol import Policy
from policies.scripted import scripted_policy
from tests.policies.compliance import PolicyServerCompliance


class TestScriptedPolicyServer(PolicyServerCompliance):
    def make_policy(self) -> Policy:
        return scripted_policy("kr-changwon")
