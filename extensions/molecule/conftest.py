"""Fixtures of every Molecule scenario's tests; their helpers are in registry_helpers.py.

pytest finds this file above each scenario's tests/ directory, so no scenario needs a
conftest of its own for these.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from testinfra.utils.ansible_runner import AnsibleRunner

# The helpers module sits beside this file; scenarios import it by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# A real browser, for the scenarios with a web UI (they provide front_name, front_address).
# Imported fixtures: pytest finds them here, nothing calls them by name.
from browser_helpers import (  # noqa: E402, F401  # pylint: disable=unused-import
    browser,
    browser_executable,
    lab_ca,
    launch_browser,
    page,
    playwright_driver,
)
from registry_helpers import REGISTRY_PORT, test_host  # noqa: E402


@pytest.fixture(scope="session")
def inventory():
    return AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="session")
def server():
    return test_host("registry")


@pytest.fixture(scope="session")
def client_a():
    return test_host("client-a")


@pytest.fixture(scope="session")
def client_b():
    return test_host("client-b")


@pytest.fixture(scope="session")
def outsider():
    return test_host("outsider")


@pytest.fixture(scope="session")
def registry():
    """The address clients use: the server's host name on the test network, never localhost."""
    return "registry:%d" % REGISTRY_PORT


@pytest.fixture(scope="session")
def credentials(inventory):
    def _for(name):
        variables = inventory.get_variables(name)
        return variables["registry_client_username"], variables["registry_client_password"]

    return _for
