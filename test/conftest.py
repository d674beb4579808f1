"""Shared test fixtures: where the real sensor data lives, and an isolated ROS graph."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository next to shared/ (X/main and X/shared).
SHARED_DATA = REPO.parent / "shared" / "data"

# Every test run talks ROS on its own domain and only on this machine.
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when the data is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sensor data not found at {SHARED_DATA}")
    return SHARED_DATA
