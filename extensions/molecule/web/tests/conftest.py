"""Fixtures of the web scenario: the images the UI shows, and a real browser.

The fixtures every scenario shares are in ../../conftest.py.
"""

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect
from registry_helpers import container_address, push_unique_image, test_host

# A page on a 2-core machine shared with three Docker engines: give it time to settle.
expect.set_options(timeout=15_000)

FRONT = "web.privreg.test"  # the front's DNS name on the test network (a network alias)
PUSHER = ("pusher", "molecule-pusher-pw")
MANY_TAGS = 200  # tags made through the API in web-demo/many, besides its "base" tag
BULK_REPOSITORIES = 105  # more than one page (100) of _catalog
ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts")) / "web"


@pytest.fixture(scope="session")
def web_host():
    return test_host("web")


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
        labels = ["LABEL org.example.team=web", "LABEL org.example.tag=%s" % tag]
        app[tag] = push_unique_image(
            host,
            FRONT + "/web-demo/app",
            tag=tag,
            payload_bytes=200_000,
            changes=[*labels, 'CMD ["/payload"]'],
        )["digest"]

    # A multi-arch index: two single-platform images (docker import --platform) joined
    # with docker manifest.
    platforms = [
        push_unique_image(
            host, FRONT + "/web-demo/multi", tag=arch, platform="linux/" + arch, changes=()
        )["reference"]
        for arch in ("amd64", "arm64")
    ]
    index_ref = "%s/web-demo/multi:1.0" % FRONT
    host.check_output(
        "docker manifest rm %s >/dev/null 2>&1 || true; docker manifest create %s %s %s >/dev/null",
        index_ref,
        index_ref,
        *platforms,
    )
    index_digest = host.check_output("docker manifest push --purge %s", index_ref).split()[-1]

    # A repository with 201 tags (more than two pages of tags/list) and 105 more
    # repositories (more than one page of _catalog).
    push_unique_image(host, FRONT + "/web-demo/many", tag="base", payload_bytes=300_000, changes=())
    script_args = [str(a) for a in (FRONT, *PUSHER, "web-demo/many", MANY_TAGS, BULK_REPOSITORIES)]
    many = json.loads(
        host.check_output("python3 -c %s" + " %s" * len(script_args), _API_SCRIPT, *script_args)
    )
    return {"app": app, "index": index_digest, "many": many}


@pytest.fixture(scope="session")
def front_address():
    """The front container's address on the scenario network: only the browser needs it."""
    return container_address("web")


@pytest.fixture(scope="session")
def front_name():
    return FRONT


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
