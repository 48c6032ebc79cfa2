"""The web front of a token registry. The front serves the token service at /token and
sends clients that came through it there (the registry's challenge rewritten); its UI, in
a real browser, shows each user only the repositories the rules let them pull, and the
delete control only where they may delete. Runs after test_acl.py (file order)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import (
    ARTIFACTS,
    DIRECTORY,
    FRONT,
    PASSWORDS,
    REGISTRY,
    ROBOT_SECRETS,
    SERVICE,
    docker_as,
)
from playwright.sync_api import expect
from registry_helpers import http, lower_keys, test_host, unique_image

# A page on a 2-core machine shared with four Docker engines: give it time to settle.
expect.set_options(timeout=15_000)

UI = "https://%s/" % FRONT
SCREENSHOTS = ARTIFACTS / "acl-web"


@pytest.fixture(scope="module")
def images(client):
    """alice/web (alice's), bob/web (bob's), public/web and team/web (an admin's), pushed
    to the registry directly; tag by repository."""
    tags = {}
    for user, repository in (
        ("alice", "alice/web"),
        ("bob", "bob/web"),
        ("root-admin", "public/web"),
        ("root-admin", "team/web"),
    ):
        reference, tag = unique_image(client, "%s/%s" % (REGISTRY, repository))
        pushed = docker_as(client, user, "push %s", reference)
        assert pushed.rc == 0, pushed.stderr
        tags[repository] = tag
    return tags


def sign_in(page, user, password=None):
    page.goto(UI)
    page.fill("#login-user", user)
    page.fill("#login-password", password or PASSWORDS[user])
    page.click("#login-submit")


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / ("%s.png" % name)), full_page=True)


def listed(page):
    expect(page.locator("#repo-total")).to_have_attribute("data-total", re.compile(r"^\d+$"))
    return page.locator("#repo-table tbody tr[data-repo]").evaluate_all(
        "rows => rows.map(row => row.dataset.repo)"
    )


# --- the front's /token, for clients ------------------------------------------------------


def test_the_front_sends_its_clients_to_its_own_token_endpoint(client, images):
    answer = http(client, "https://%s/v2/" % FRONT)
    assert answer["status"] == 401, answer
    challenge = lower_keys(answer["headers"])["www-authenticate"]
    assert challenge == 'Bearer realm="https://%s/token",service="%s"' % (FRONT, SERVICE)
    # The direct way keeps the registry's own realm.
    direct = lower_keys(http(client, "https://%s/v2/" % REGISTRY)["headers"])["www-authenticate"]
    assert direct.startswith('Bearer realm="https://registry:5443/token"'), direct


def test_docker_pulls_through_the_front_with_a_token_from_the_front(client, images, server):
    # What registry_client does for a client of the front (the web scenario's converge):
    # the CA for the front's name and port.
    client.check_output(
        "mkdir -p /etc/docker/certs.d/%s:443 && cp /etc/docker/certs.d/%s/ca.crt "
        "/etc/docker/certs.d/%s:443/ca.crt",
        FRONT,
        REGISTRY,
        FRONT,
    )
    reference = "%s:443/alice/web:%s" % (FRONT, images["alice/web"])
    pulled = docker_as(client, "alice", "pull %s", reference, registry=FRONT + ":443")
    assert pulled.rc == 0, pulled.stderr
    denied = docker_as(
        client, "alice", "pull %s:443/bob/web:%s", FRONT, images["bob/web"], registry=FRONT + ":443"
    )
    assert denied.rc != 0
    # The tokens came through the front: its access log has them.
    log = server.check_output("docker logs registry-web 2>&1 | grep -c 'GET /token?' || true")
    assert int(log) > 0


def test_the_ui_gets_no_basic_challenge_from_the_token_service(client):
    marked = http(client, UI + "token", "carol", "wrong", headers={"X-Registry-UI": "1"})
    assert marked["status"] == 401
    assert "www-authenticate" not in lower_keys(marked["headers"])
    plain = http(client, UI + "token", "carol", "wrong")
    assert plain["status"] == 401
    assert lower_keys(plain["headers"])["www-authenticate"].startswith("Basic ")


def test_the_filtered_catalog_lists_what_the_caller_may_pull(client, images):
    # Anonymous may pull public/*, but lists nothing: no rule gives it the catalog right.
    anonymous = http(client, UI + "token/catalog")
    assert anonymous["status"] == 200, anonymous
    assert json.loads(anonymous["body"])["repositories"] == []
    alice = http(client, UI + "token/catalog", "alice", PASSWORDS["alice"])
    names = json.loads(alice["body"])["repositories"]
    assert "alice/web" in names, names
    assert "bob/web" not in names, names
    admin = http(client, UI + "token/catalog", "root-admin", PASSWORDS["root-admin"])
    assert {"alice/web", "bob/web", "public/web"} <= set(json.loads(admin["body"])["repositories"])
    refused = http(client, UI + "token/catalog", "alice", "wrong-password")
    assert refused["status"] == 401


def test_failures_through_the_front_hold_back_only_the_client_that_made_them(client):
    """Every client of the front reaches the token service from the front's address; keyed
    on that, five wrong passwords for an account from anyone locked every front user out
    of it (issue 33 #1). The service counts the address the front names instead (X-Real-IP,
    believed from the front only): the guesser is held back, another client is not."""
    token = UI + "token?service=" + SERVICE
    statuses = [http(client, token, "root-admin", "guess-%d" % n)["status"] for n in range(6)]
    assert statuses == [401] * 5 + [429], statuses
    other = http(test_host("podman-client"), token, "root-admin", PASSWORDS["root-admin"])
    assert other["status"] == 200, other
    own = http(client, token, "root-admin", PASSWORDS["root-admin"])
    assert own["status"] == 429, own


# --- the UI in a browser --------------------------------------------------------------------


def test_alice_sees_only_the_repositories_she_may_pull(page, images):
    sign_in(page, "alice")
    names = listed(page)
    shot(page, "01-alice-repositories")
    assert {"alice/web", "public/web"} <= set(names)
    assert all(name.startswith(("alice/", "public/")) for name in names), names
    # The tag count comes from a token for each repository.
    expect(page.locator('tr[data-repo="alice/web"] td.tag-count')).to_have_attribute(
        "data-count", "1"
    )


def test_an_admin_sees_every_repository(page, images):
    sign_in(page, "root-admin")
    names = listed(page)
    assert {"alice/web", "bob/web", "public/web"} <= set(names)


def test_alice_has_no_delete_control_where_she_may_not_delete(page, images):
    sign_in(page, "alice")
    listed(page)
    for repository in ("public/web", "alice/web"):  # pull only; pull and push, no delete
        page.goto(UI + "#/repo/%s/tag/%s" % (repository.replace("/", "%2F"), images[repository]))
        expect(page.locator("#detail-digest")).to_be_visible()
        expect(page.locator("#delete-tag")).to_have_count(0)
    shot(page, "02-alice-tag-without-delete")


def test_an_admin_has_the_delete_control(page, images):
    sign_in(page, "root-admin")
    listed(page)
    page.goto(UI + "#/repo/alice%%2Fweb/tag/%s" % images["alice/web"])
    expect(page.locator("#delete-tag")).to_be_visible()
    shot(page, "03-admin-tag-with-delete")


def test_a_repository_alice_may_not_pull_is_refused_by_address(page, images):
    sign_in(page, "alice")
    listed(page)
    page.goto(UI + "#/repo/bob%2Fweb")
    expect(page.locator("#error")).to_contain_text("may not pull bob/web")
    shot(page, "04-alice-refused-bob")


def test_a_directory_admin_signs_in_and_has_the_delete_control(page, images):
    # dave is no local user: the directory checks his password, its group makes him admin.
    sign_in(page, "dave", DIRECTORY["dave"])
    assert {"alice/web", "bob/web", "public/web", "team/web"} <= set(listed(page))
    page.goto(UI + "#/repo/team%%2Fweb/tag/%s" % images["team/web"])
    expect(page.locator("#delete-tag")).to_be_visible()
    shot(page, "05-directory-admin-with-delete")


def test_a_robot_sees_its_scope_and_no_delete_control_without_delete(page, images):
    # robot$ci may pull and push team/*, nothing else, and never delete.
    sign_in(page, "robot$ci", ROBOT_SECRETS["robot$ci"])
    names = listed(page)
    assert "team/web" in names, names
    assert all(name.startswith("team/") for name in names), names
    page.goto(UI + "#/repo/team%%2Fweb/tag/%s" % images["team/web"])
    expect(page.locator("#detail-digest")).to_be_visible()
    expect(page.locator("#delete-tag")).to_have_count(0)
    shot(page, "06-robot-without-delete")


def test_a_wrong_password_is_refused_in_the_form(page):
    sign_in(page, "carol", "not-carols-password")
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    expect(page.locator("#repo-table")).to_have_count(0)


def test_the_front_never_logs_a_password_or_token(server):
    log = server.check_output("docker logs registry-web 2>&1")
    for password in PASSWORDS.values():
        assert password not in log
    assert "eyJ" not in log  # the start of every JWT
