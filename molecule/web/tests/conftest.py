"""Fixtures of the web scenario: the images the UI shows, and a real browser.

Shared fixtures live in molecule/resources/tests/registry_fixtures.py.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))

from registry_fixtures import *  # noqa: E402,F403
from registry_fixtures import container_name, test_host  # noqa: E402

# A page on a 2-core machine shared with three Docker engines: give it time to settle.
expect.set_options(timeout=15_000)

FRONT = "web.privreg.test"  # the front's DNS name on the test network (a network alias)
PUSHER = ("pusher", "molecule-pusher-pw")
MANY_TAGS = 200  # tags made through the API in web-demo/many, besides its "base" tag
BULK_REPOSITORIES = 105  # more than one page (100) of _catalog
ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts")) / "web"

# Debian's Chromium, started the way this closed network needs it: no background
# traffic, no first-run work. Only the front's name resolves (to the container's address).
CHROMIUM = "/usr/bin/chromium"
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


@pytest.fixture(scope="session")
def front():
    return FRONT


@pytest.fixture(scope="session")
def web_host():
    return test_host("web")


def _shell(host, script):
    result = host.run("bash -c %s", script)
    assert result.rc == 0, result.stdout + result.stderr
    return result.stdout


# Runs on client-a: many requests over one keep-alive connection through the front, faster
# than 300 `docker push` runs. Each tag gets its own image config (its own created date)
# and an OCI manifest, so every tag has its own digest and the UI fetches what it would for
# 200 separate builds. Bulk repositories get their blobs by cross-repository mount.
_API_SCRIPT = r"""
import base64, hashlib, http.client, json, ssl, sys, urllib.parse
front, user, password, repo, count, bulk = sys.argv[1:7]
auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
conn = http.client.HTTPSConnection(front, 443, context=ssl.create_default_context())
def call(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=dict(headers or {}, Authorization=auth))
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        sys.exit("%s %s: %s %s" % (method, path, response.status, data[:300]))
    return response, data
def upload(blob):
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    response, _ = call("POST", "/v2/%s/blobs/uploads/" % repo)
    location = urllib.parse.urlsplit(response.getheader("Location"))
    call("PUT", "%s?%s&digest=%s" % (location.path, location.query, digest), blob,
         {"Content-Type": "application/octet-stream"})
    return digest
V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
_, raw = call("GET", "/v2/%s/manifests/base" % repo, headers={"Accept": V2})
base = json.loads(raw)
_, config = call("GET", "/v2/%s/blobs/%s" % (repo, base["config"]["digest"]))
config = json.loads(config)
layers = [dict(l, mediaType="application/vnd.oci.image.layer.v1.tar+gzip") for l in base["layers"]]
tags = {}
for i in range(1, int(count) + 1):
    tag = "t%03d" % i
    created = "2026-01-%02dT%02d:%02d:00Z" % (1 + i // 24 % 28, i % 24, i % 60)
    blob = json.dumps(dict(config, created=created)).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": upload(blob), "size": len(blob)},
                "layers": layers}
    response, _ = call("PUT", "/v2/%s/manifests/%s" % (repo, tag), json.dumps(manifest).encode(),
                       {"Content-Type": OCI})
    tags[tag] = {"digest": response.getheader("Docker-Content-Digest"), "created": created,
                 "size": len(blob) + sum(l["size"] for l in layers)}
blobs = [base["config"]["digest"]] + [l["digest"] for l in base["layers"]]
for i in range(int(bulk)):
    target = "web-demo/bulk/r%03d" % i
    for blob in blobs:
        call("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (target, blob, repo))
    call("PUT", "/v2/%s/manifests/v1" % target, raw, {"Content-Type": V2})
print(json.dumps(tags))
"""


@pytest.fixture(scope="session")
def pushed(client_a):
    """Push, through the front, what the browser looks at. Returns digests and sizes."""
    host = client_a
    # An image per tag, each with its own content and a label; pushed through the front.
    app = {}
    for tag in ("v1", "v2", "v3"):
        ref = "%s/web-demo/app:%s" % (FRONT, tag)
        _shell(
            host,
            "set -e; d=$(mktemp -d); head -c 200000 /dev/urandom > $d/payload-%s; "
            "tar -C $d -cf - . | docker import --change 'LABEL org.example.team=web' "
            "--change 'LABEL org.example.tag=%s' --change 'CMD [\"/payload\"]' - %s >/dev/null"
            % (tag, tag, ref),
        )
        out = _shell(host, "docker push %s" % ref)
        app[tag] = out.split("digest: ")[1].split()[0]

    # A multi-arch index: two single-platform images (docker import --platform) joined
    # with docker manifest.
    platforms = {}
    for arch in ("amd64", "arm64"):
        ref = "%s/web-demo/multi:%s" % (FRONT, arch)
        _shell(
            host,
            "set -e; d=$(mktemp -d); echo %s > $d/arch; "
            "tar -C $d -cf - . | docker import --platform linux/%s - %s >/dev/null; "
            "docker push %s >/dev/null" % (arch, arch, ref, ref),
        )
        platforms[arch] = ref
    index_ref = "%s/web-demo/multi:1.0" % FRONT
    _shell(
        host,
        "docker manifest rm %s >/dev/null 2>&1 || true; docker manifest create %s %s %s >/dev/null"
        % (index_ref, index_ref, platforms["amd64"], platforms["arm64"]),
    )
    index_digest = _shell(host, "docker manifest push --purge %s" % index_ref).strip().split()[-1]

    # A repository with 201 tags (more than two pages of tags/list) and 105 more
    # repositories (more than one page of _catalog).
    _shell(
        host,
        "set -e; d=$(mktemp -d); head -c 300000 /dev/urandom > $d/blob; "
        "tar -C $d -cf - . | docker import - %s/web-demo/many:base >/dev/null; "
        "docker push %s/web-demo/many:base >/dev/null" % (FRONT, FRONT),
    )
    args = " ".join(
        shlex.quote(str(a)) for a in (FRONT, *PUSHER, "web-demo/many", MANY_TAGS, BULK_REPOSITORIES)
    )
    many = json.loads(_shell(host, "python3 -c %s %s" % (shlex.quote(_API_SCRIPT), args)))
    return {"app": app, "index": index_digest, "many": many}


@pytest.fixture(scope="session")
def front_address():
    """The front container's address on the scenario network: only the browser needs it."""
    out = subprocess.check_output(["docker", "inspect", container_name("web")], text=True)
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


@pytest.fixture(scope="session")
def lab_ca(server, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "lab-ca.crt"
    path.write_text(server.check_output("cat /opt/registry/certs/ca.crt") + "\n")
    return path


def _browser_home(tmp_path_factory, ca=None):
    """A HOME whose NSS database (what Chromium trusts on Linux) holds only the given CA."""
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", "sql:%s" % nssdb, "-N", "--empty-password"], check=True)
    if ca is not None:
        subprocess.run(
            [
                "certutil",
                "-d",
                "sql:%s" % nssdb,
                "-A",
                "-t",
                "C,,",
                "-n",
                "privreg-lab-ca",
                "-i",
                str(ca),
            ],
            check=True,
        )
    return home


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def launch_browser(playwright_driver, front_address, tmp_path_factory):
    """Start Debian's Chromium; trusted_ca=None gives one that trusts no lab CA."""
    launched = []

    def _launch(trusted_ca):
        home = _browser_home(tmp_path_factory, trusted_ca)
        browser = playwright_driver.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS
            + ["--host-resolver-rules=MAP %s %s, MAP * ~NOTFOUND" % (FRONT, front_address)],
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


@pytest.fixture
def signed_in(page, pushed):
    """A page signed in through the UI's form, on the repository list."""
    page.goto("https://%s/" % FRONT)
    page.fill("#login-user", PUSHER[0])
    page.fill("#login-password", PUSHER[1])
    page.click("#login-submit")
    page.wait_for_selector("#repo-table")
    return page


@pytest.fixture
def screenshot(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _shot(name):
        path = ARTIFACTS / ("%s.png" % name)
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot
