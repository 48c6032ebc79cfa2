"""A peer's test suite: the OCI distribution-spec conformance tests, run against the
deployment (TLS and credentials) and through the web front, must give exactly what they
give against the bare registry (same image, plain HTTP, no auth) started beside them.
Any other outcome is the deployment's doing.

The suite is ../shared/tools/oci-conformance (built offline from distribution-spec v1.1.1);
PRIVREG_OCI_CONFORMANCE points at it. Each run's junit.xml is kept under artifacts/.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from registry_helpers import REGISTRY_PORT, container_address

SUITE = os.environ.get("PRIVREG_OCI_CONFORMANCE", "")
ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts")) / "conformance"
IMAGE = os.environ.get("PRIVREG_REGISTRY_IMAGE", "registry:3.1.1")
USER, PASSWORD = "pusher", "molecule-pusher-pw"
# What the bare registry gives, by line (the suite's README names the failures as the
# registry's own gaps: no referrers API, and on 2.8 tags paging, chunk ranges and more).
EXPECTED_BARE = {
    "2": {"passed": 62, "failed": 12, "skipped": 5},
    "3": {"passed": 68, "failed": 6, "skipped": 5},
}
BARE_CONFIG = """version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
"""


@pytest.fixture(scope="module", autouse=True)
def _the_suite_is_there():
    """A missing suite fails these tests; it never skips them (scripts/lab sets the path)."""
    assert SUITE, "PRIVREG_OCI_CONFORMANCE is not set: it names the OCI conformance suite"
    assert os.access(SUITE, os.X_OK), "PRIVREG_OCI_CONFORMANCE (%s) is not a program" % SUITE


def run_suite(name, url, ca_file=None, credentials=None):
    """Run the suite against url; return {spec name: passed|failed|skipped}."""
    out = ARTIFACTS / name
    out.mkdir(parents=True, exist_ok=True)
    # Namespaces of their own per run: nothing left over from another run can interfere.
    namespace = "conformance-%s/%s" % (name, uuid.uuid4().hex[:8])
    env = dict(
        os.environ,
        OCI_ROOT_URL=url,
        OCI_NAMESPACE=namespace + "/repo",
        OCI_CROSSMOUNT_NAMESPACE=namespace + "/other",
        OCI_TEST_PULL="1",
        OCI_TEST_PUSH="1",
        OCI_TEST_CONTENT_DISCOVERY="1",
        OCI_TEST_CONTENT_MANAGEMENT="1",
        OCI_HIDE_SKIPPED_WORKFLOWS="0",
        OCI_DEBUG="0",
        OCI_REPORT_DIR=str(out),
    )
    if ca_file:
        env["SSL_CERT_FILE"] = str(ca_file)
    if credentials:
        env["OCI_USERNAME"], env["OCI_PASSWORD"] = credentials
    result = subprocess.run(
        [SUITE, "-ginkgo.no-color"],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    (out / "output.txt").write_text(result.stdout + result.stderr)
    outcomes = {}
    # The report of a run this test made itself. Some specs share a name (two setup steps
    # are both "Populate registry with test manifest"): the n-th of a name is its own key.
    for case in ET.parse(out / "junit.xml").getroot().iter("testcase"):  # noqa: S314
        name = case.get("name")
        if name == "html custom reporter":  # ginkgo's reporter, not a spec
            continue
        key = "%s #%d" % (name, sum(1 for k in outcomes if k.rsplit(" #", 1)[0] == name) + 1)
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[key] = "failed"
        elif case.find("skipped") is not None:
            outcomes[key] = "skipped"
        else:
            outcomes[key] = "passed"
    return outcomes


def summary(name):
    """Ginkgo's own count, from the output: "62 Passed | 12 Failed | 0 Pending | 5 Skipped"."""
    text = (ARTIFACTS / name / "output.txt").read_text()
    found = re.search(r"(\d+) Passed \| (\d+) Failed \| \d+ Pending \| (\d+) Skipped", text)
    return dict(zip(("passed", "failed", "skipped"), map(int, found.groups())))


def counts(outcomes):
    return {
        state: list(outcomes.values()).count(state) for state in ("passed", "failed", "skipped")
    }


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """The same registry image, bare, on this machine's loopback: the yardstick."""
    config = tmp_path_factory.mktemp("bare") / "config.yml"
    config.write_text(BARE_CONFIG)
    name = "privreg-conformance-bare-%s" % uuid.uuid4().hex[:6]
    subprocess.run(
        [
            "docker",
            "run",
            "--detach",
            "--rm",
            "--name",
            name,
            "--publish",
            "127.0.0.1::5000",
            "--volume",
            "%s:/bare/config.yml:ro" % config,
            IMAGE,
            # Named on the command line: each registry line has its own default path.
            "serve",
            "/bare/config.yml",
        ],
        check=True,
        capture_output=True,
    )
    try:
        port = subprocess.check_output(["docker", "port", name, "5000"], text=True).rsplit(
            ":", maxsplit=1
        )[-1]
        url = "http://127.0.0.1:%s" % port.strip()
        for _attempt in range(30):
            try:
                urllib.request.urlopen(url + "/v2/", timeout=2).close()  # noqa: S310
                break
            except OSError:
                time.sleep(1)
        yield run_suite("bare", url)
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def ca_file(server, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_text(server.file("/opt/registry/certs/ca.crt").content_string)
    return path


def test_the_bare_registry_gives_the_documented_result(bare):
    expected = EXPECTED_BARE[IMAGE.rsplit(":", 1)[1].split(".")[0]]
    assert counts(bare) == expected, counts(bare)
    assert summary("bare") == expected


def test_the_deployment_conforms_exactly_like_the_bare_registry(bare, ca_file):
    url = "https://%s:%d" % (container_address("registry"), REGISTRY_PORT)
    deployed = run_suite("deployment", url, ca_file, (USER, PASSWORD))
    differences = {k: (bare.get(k), v) for k, v in deployed.items() if bare.get(k) != v}
    assert differences == {}, differences
    assert counts(deployed) == counts(bare)


def test_the_front_conforms_exactly_like_the_bare_registry(bare, ca_file):
    url = "https://%s" % container_address("web")
    front = run_suite("front", url, ca_file, (USER, PASSWORD))
    differences = {k: (bare.get(k), v) for k, v in front.items() if bare.get(k) != v}
    assert differences == {}, differences
    assert counts(front) == counts(bare)
