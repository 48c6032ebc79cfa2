"""The web UI in a real browser: Debian's Chromium, driven by Playwright, over TLS with the
lab CA, against the deployed front. Every page leaves a screenshot in artifacts/web/."""

import json
import re
import time

import pytest
from conftest import ARTIFACTS, FRONT, MANY_TAGS, PUSHER
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from registry_helpers import http

REGISTRY = "https://registry:5000"  # the registry itself, bypassing the front


def api(client, path, method="GET", accept=None):
    """The registry API's own answer, asked from client-a directly (not through the front)."""
    headers = {"Accept": accept} if accept else None
    return http(client, REGISTRY + path, *PUSHER, method, headers)


def api_manifest(client, repo, ref):
    accept = ", ".join(
        [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    answer = api(client, "/v2/%s/manifests/%s" % (repo, ref), accept=accept)
    assert answer["status"] == 200, answer
    return answer["headers"]["Docker-Content-Digest"], json.loads(answer["body"])


def image_size(manifest):
    return manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def test_a_browser_without_the_lab_ca_refuses_the_front(launch_browser):
    browser = launch_browser(None)
    page = browser.new_page()
    with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
        page.goto("https://%s/" % FRONT)


def test_a_wrong_password_is_refused_without_a_browser_prompt(page, screenshot, pushed):
    page.goto("https://%s/" % FRONT)
    page.fill("#login-user", PUSHER[0])
    page.fill("#login-password", "not-the-password")
    page.click("#login-submit")
    # The front drops the basic-auth challenge for the UI: the form answers, no dialog.
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    expect(page.locator("#repo-table")).to_have_count(0)
    screenshot("01-login-refused")


def test_the_repository_list_follows_every_catalog_page(signed_in, screenshot, client_a):
    page = signed_in
    catalog = api(client_a, "/v2/_catalog?n=1000")
    repositories = json.loads(catalog["body"])["repositories"]
    assert len(repositories) > 100  # more than one page of the UI's n=100 requests
    expect(page.locator("#repo-total")).to_have_attribute("data-total", str(len(repositories)))
    expect(page.locator("#page-info")).to_contain_text("Page 1 of")
    screenshot("02-repositories")

    page.fill("#repo-search", "web-demo/m")
    rows = page.locator("#repo-table tbody tr[data-repo]")
    expect(rows).to_have_count(2)
    expect(page.locator('tr[data-repo="web-demo/many"] td.tag-count')).to_have_attribute(
        "data-count", str(MANY_TAGS + 1)
    )
    expect(page.locator('tr[data-repo="web-demo/multi"] td.tag-count')).to_have_attribute(
        "data-count", "3"
    )
    screenshot("03-repositories-filtered")


def test_tags_show_the_registry_api_digests_and_sizes(signed_in, screenshot, client_a, pushed):
    page = signed_in
    page.click('tr[data-repo="web-demo/app"] a')
    expect(page.locator("#tag-total")).to_have_attribute("data-total", "3")
    for tag in ("v1", "v2", "v3"):
        row = page.locator('#tag-table tr[data-tag="%s"]' % tag)
        expect(row).to_have_attribute("data-state", "loaded")
        digest, manifest = api_manifest(client_a, "web-demo/app", tag)
        assert digest == pushed["app"][tag]  # what docker push printed through the front
        expect(row.locator("td.digest")).to_have_attribute("data-digest", digest)
        expect(row.locator("td.size")).to_have_attribute("data-bytes", str(image_size(manifest)))
        expect(row.locator("td.platforms")).to_have_attribute("data-platforms", "linux/amd64")
        expect(row.locator(".pull-command")).to_have_text(
            "docker pull %s/web-demo/app:%s" % (FRONT, tag)
        )
    screenshot("04-tags")


def test_a_tag_shows_layers_labels_and_history(signed_in, screenshot, client_a):
    page = signed_in
    page.goto("https://%s/#/repo/web-demo%%2Fapp/tag/v1" % FRONT)
    digest, manifest = api_manifest(client_a, "web-demo/app", "v1")
    expect(page.locator("#detail-digest")).to_have_text(digest)
    layers = page.locator("#layer-table tbody tr")
    expect(layers).to_have_count(len(manifest["layers"]))
    for i, layer in enumerate(manifest["layers"]):
        expect(layers.nth(i)).to_have_attribute("data-digest", layer["digest"])
        expect(layers.nth(i)).to_have_attribute("data-bytes", str(layer["size"]))
    expect(page.locator('#label-table tr[data-label="org.example.team"] td')).to_have_text("web")
    expect(page.locator("#history li")).not_to_have_count(0)
    expect(page.locator("#detail-size")).to_contain_text("%d bytes" % image_size(manifest))
    screenshot("05-tag-details")


def test_a_multi_arch_index_lists_its_platforms(signed_in, screenshot, client_a, pushed):
    page = signed_in
    page.goto("https://%s/#/repo/web-demo%%2Fmulti" % FRONT)
    row = page.locator('#tag-table tr[data-tag="1.0"]')
    expect(row).to_have_attribute("data-state", "loaded")
    expect(row.locator("td.digest")).to_have_attribute("data-digest", pushed["index"])
    expect(row.locator("td.platforms")).to_have_attribute(
        "data-platforms", "linux/amd64,linux/arm64"
    )
    screenshot("06-multi-arch-tags")

    row.locator("a").click()
    digest, index = api_manifest(client_a, "web-demo/multi", "1.0")
    assert digest == pushed["index"]
    expect(page.locator("#detail-digest")).to_have_text(digest)
    platforms = page.locator("#platform-table tbody tr")
    expect(platforms).to_have_count(2)
    for child in index["manifests"]:
        name = "%s/%s" % (child["platform"]["os"], child["platform"]["architecture"])
        child_row = page.locator('#platform-table tr[data-platform="%s"]' % name)
        expect(child_row).to_have_attribute("data-digest", child["digest"])
        child_manifest = api_manifest(client_a, "web-demo/multi", child["digest"])[1]
        expect(child_row.locator("td.size")).to_have_attribute(
            "data-bytes", str(image_size(child_manifest))
        )
    screenshot("07-multi-arch-index")


def test_a_repository_with_201_tags_renders_page_by_page(signed_in, screenshot, pushed):
    page = signed_in
    started = time.monotonic()
    page.goto("https://%s/#/repo/web-demo%%2Fmany" % FRONT)
    expect(page.locator("#tag-total")).to_have_attribute("data-total", str(MANY_TAGS + 1))
    rows_shown = time.monotonic() - started
    page.wait_for_selector("#tag-table[data-rendered-ms]", timeout=30000)
    details_filled = time.monotonic() - started
    rows = page.locator("#tag-table tbody tr[data-tag]")
    expect(rows).to_have_count(50)
    expect(page.locator("#page-info")).to_have_text("Page 1 of 5")
    for tag, made in list(pushed["many"].items())[:49]:  # t001..t049 follow "base"
        row = page.locator('#tag-table tr[data-tag="%s"]' % tag)
        expect(row.locator("td.digest")).to_have_attribute("data-digest", made["digest"])
        expect(row.locator("td.size")).to_have_attribute("data-bytes", str(made["size"]))
        expect(row.locator("td.created")).to_have_attribute("data-created", made["created"])
    screenshot("08-201-tags")
    ui_reported_ms = int(page.locator("#tag-table").get_attribute("data-rendered-ms"))

    page.click("#page-next")
    expect(page.locator("#page-info")).to_have_text("Page 2 of 5")
    page.wait_for_selector("#tag-table[data-rendered-ms]", timeout=30000)
    expect(rows.first).to_have_attribute("data-tag", "t050")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timings = {
        "tags": MANY_TAGS + 1,
        "seconds_until_all_tags_listed": round(rows_shown, 3),
        "seconds_until_first_page_of_50_rows_has_digest_size_created": round(details_filled, 3),
        "ui_reported_ms_for_the_first_page": ui_reported_ms,
    }
    (ARTIFACTS / "render-201-tags.json").write_text(json.dumps(timings, indent=2) + "\n")


def test_deleting_a_tag_removes_it_from_the_registry(signed_in, screenshot, client_a, pushed):
    page = signed_in
    page.goto("https://%s/#/repo/web-demo%%2Fapp/tag/v3" % FRONT)
    expect(page.locator("#detail-digest")).to_have_text(pushed["app"]["v3"])
    screenshot("09-before-delete")
    questions = []

    def accept(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#delete-tag")
    expect(page.locator("#notice")).to_contain_text("Deleted web-demo/app:v3")
    assert pushed["app"]["v3"] in questions[0]
    expect(page.locator("#tag-total")).to_have_attribute("data-total", "2")
    screenshot("10-after-delete")

    tags = json.loads(api(client_a, "/v2/web-demo/app/tags/list")["body"])["tags"]
    assert sorted(tags) == ["v1", "v2"]
    gone = api(client_a, "/v2/web-demo/app/manifests/%s" % pushed["app"]["v3"])
    assert gone["status"] == 404


@pytest.mark.parametrize(
    "address",
    [
        "#/repo/..%2F..%2Fv2%2F_catalog",  # a name that would climb out of /v2/NAME/
        "#/repo/web-demo%2Fapp/tag/..%2F..%2F..%2F_catalog",  # a tag that would
        "#/repo/web-demo%2FApp",  # upper case: not a repository name
        "#/repo/%E0%A4%A",  # a broken %-sequence (a blank page before)
        "#/nowhere",
    ],
)
def test_crafted_addresses_get_an_error_page_and_no_registry_request(signed_in, address):
    page = signed_in
    # Let the repository list finish (its last catalog page, the tag counts on screen), so
    # only what the crafted address makes the page ask for is recorded. data-total is
    # absent while the first page loads and empty until the last: wait for a number.
    expect(page.locator("#repo-total")).to_have_attribute("data-total", re.compile(r"^[0-9]+$"))
    expect(page.locator("#repo-table td.tag-count:not([data-count])")).to_have_count(0)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("https://%s/%s" % (FRONT, address))
    expect(page.locator("#error-page")).to_be_visible()
    expect(page.locator("#error")).not_to_be_empty()
    assert [url for url in requested if "/v2/" in url] == []
