"""Hypothesis profiles for the property tests.

``ci`` (the default) is sized for the CI time budget and derandomized, so a failure reproduces
on every run; ``nightly`` runs ten times the examples with fresh randomness. Choose one with
``HYPOTHESIS_PROFILE=nightly pytest tests/envs/test_bundle_properties.py``. Tests that need
many examples scale their counts from the profile's ``max_examples`` (see
``tests/envs/test_bundle_properties.py``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, suppress_health_check=_SLOW_DATA
)
settings.register_profile(
    "nightly", max_examples=1000, deadline=None, derandomize=False, suppress_health_check=_SLOW_DATA
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
