"""Shared fixtures live in molecule/resources/tests/registry_fixtures.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))

from registry_fixtures import *  # noqa: E402,F403
