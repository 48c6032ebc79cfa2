"""Settings of the checkout that reach every run made from it."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_host_key_checking_stays_on_for_runs_from_a_checkout():
    """ansible.cfg applies to production runs from a checkout too: it must not switch SSH
    host key checking off (the lab connects with `docker exec` and needs no exception)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    assert config.get("defaults", "host_key_checking", fallback="True").lower() in (
        "true",
        "1",
        "yes",
    )
