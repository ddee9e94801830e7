"""Where the shared reference fixtures are, and whether their absence may be skipped.

``$GRAPHDYN_FIXTURES`` names the folder; by default ``shared/fixtures`` beside the repository.
With ``GRAPHDYN_REQUIRE_FIXTURES=1`` (CI sets it in ``.ci/run``) a missing folder stops the
suite (tests/conftest.py) instead of skipping the parity tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(os.environ.get("GRAPHDYN_FIXTURES") or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures")
REQUIRED = os.environ.get("GRAPHDYN_REQUIRE_FIXTURES", "").strip().lower() in {"1", "true", "yes", "on"}
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"shared fixtures folder not found at {FIXTURES} (clone shared/ beside the repository, or set $GRAPHDYN_FIXTURES)",
)
