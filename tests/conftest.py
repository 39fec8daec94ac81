"""Shared test settings.

Cross-checks against reference implementations (pytorch-grad-cam, TorchRay,
pysaliency) skip on a machine without them, but CI installs them, so there a
missing reference is a failure rather than a silent skip.
"""

import os

import pytest


def missing_reference(reason: str):
    """Skip locally; fail under CI (CI=true), where `.ci/run` installs every reference."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"reference implementation missing under CI: {reason}")
    pytest.skip(reason)
