"""A real browser for the scenarios that test a web UI: Debian's Chromium driven by
Playwright, trusting only the CA a test hands it, and resolving only the front's name.

A scenario's conftest imports these fixtures and provides `front_name` (the name the
browser uses) and `front_address` (the address that name goes to).
"""

from __future__ import annotations

import os
import subprocess

import pytest

# Debian's Chromium, started the way this closed network needs it: no background
# traffic, no first-run work.
CHROMIUM = "/usr/bin/chromium"
# The image of the container that only holds the browser's network namespace.
BROWSER_NETWORK_IMAGE = "privreg-test/debian-base:trixie"
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
]


def _browser_home(tmp_path_factory, ca=None):
    """A HOME whose NSS database (what Chromium trusts on Linux) holds only the given CA."""
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    database = "sql:%s" % nssdb
    subprocess.run(["certutil", "-d", database, "-N", "--empty-password"], check=True)
    if ca is not None:
        add = ["certutil", "-d", database, "-A", "-t", "C,,", "-n", "privreg-lab-ca", "-i", str(ca)]
        subprocess.run(add, check=True)
    return home


@pytest.fixture(scope="session")
def lab_ca(server, tmp_path_factory):
    """The lab CA (the registry's, which signed the front's certificate) as a file."""
    path = tmp_path_factory.mktemp("ca") / "lab-ca.crt"
    path.write_text(server.check_output("cat /opt/registry/certs/ca.crt") + "\n")
    return path


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser_executable(tmp_path_factory):
    """Chromium in a network namespace of its own on the scenario's network.

    Chromium ends requests with ERR_NETWORK_CHANGED when an address comes or goes on any
    interface it sees, and on the CI machine the other lane's scenarios keep creating and
    removing Docker networks. A container that only sleeps lends its namespace, in which
    no interface changes; Playwright still talks to Chromium over pipes.
    """
    scenario = os.environ["MOLECULE_SCENARIO_NAME"]
    name = "privreg-mol-%s-browser" % scenario
    subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)
    subprocess.run(
        ["docker", "run", "--detach", "--name", name, "--network", "privreg-mol-" + scenario,
         "--entrypoint", "sleep", BROWSER_NETWORK_IMAGE, "infinity"],
        capture_output=True, check=True,
    )  # fmt: skip
    try:
        pid = subprocess.check_output(
            ["docker", "container", "inspect", "--format", "{{.State.Pid}}", name], text=True
        ).strip()
        wrapper = tmp_path_factory.mktemp("browser") / "chromium"
        wrapper.write_text(
            '#!/bin/sh\nexec nsenter --net=/proc/%s/ns/net %s "$@"\n' % (pid, CHROMIUM)
        )
        wrapper.chmod(0o755)
        yield str(wrapper)
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def launch_browser(
    playwright_driver, browser_executable, front_name, front_address, tmp_path_factory
):
    """Start Chromium; trusted_ca=None gives one that trusts no lab CA."""
    launched = []

    def _launch(trusted_ca):
        home = _browser_home(tmp_path_factory, trusted_ca)
        rules = "MAP %s %s, MAP * ~NOTFOUND" % (front_name, front_address)
        browser = playwright_driver.chromium.launch(
            executable_path=browser_executable,
            headless=True,
            args=CHROMIUM_FLAGS + ["--host-resolver-rules=" + rules],
            env=dict(os.environ, HOME=str(home)),
        )
        launched.append(browser)
        return browser

    yield _launch
    for browser in launched:
        browser.close()


@pytest.fixture(scope="session")
def browser(launch_browser, lab_ca):
    return launch_browser(lab_ca)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    yield page
    context.close()
