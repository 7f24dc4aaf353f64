"""Physical-AI Testbed: the orchestrator (campaigns, policy client, evaluation, replay, CLI)."""

__version__ = "0.1.0"
