"""Read-only mode (the default): no delete control in the UI, DELETE refused by nginx.
Runs last: it converges the front read-only, then back to the scenario's settings."""

import json

import pytest
from conftest import FRONT, PUSHER
from playwright.sync_api import expect
from registry_helpers import converge, http, manifest_digest, recap


@pytest.fixture(scope="module")
def read_only_front(pushed):
    rc, out = converge("--limit", "web", "-e", "registry_web_read_only=true")
    assert rc == 0, out[-3000:]
    assert recap(out)["web"]["changed"] > 0
    yield
    rc, out = converge("--limit", "web")
    assert rc == 0, out[-3000:]


def test_nginx_refuses_delete_in_the_registry_error_format(read_only_front, client_a, pushed):
    digest = pushed["app"]["v1"]
    url = "https://%s/v2/web-demo/app/manifests/%s" % (FRONT, digest)
    answer = http(client_a, url, *PUSHER, "DELETE")
    assert answer["status"] == 405
    assert answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"])["errors"][0]["code"] == "UNSUPPORTED"
    # The registry (which does allow deletes) never saw it: the manifest is still there.
    assert manifest_digest(client_a, "registry:5000", "web-demo/app", "v1", *PUSHER) == digest
    # Reading and pushing through the front go on as before.
    assert http(client_a, url, *PUSHER, "HEAD")["status"] == 200


def test_the_ui_offers_no_delete(read_only_front, signed_in, screenshot):
    page = signed_in
    expect(page.locator("#read-only-badge")).to_be_visible()
    page.goto("https://%s/#/repo/web-demo%%2Fapp/tag/v1" % FRONT)
    expect(page.locator("#detail-digest")).not_to_be_empty()
    expect(page.locator("#delete-tag")).to_have_count(0)
    screenshot("11-read-only-tag")
