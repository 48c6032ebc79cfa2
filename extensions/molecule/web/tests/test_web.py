"""The front without a browser: docker through it, what it tells clients, what it refuses."""

import json

import pytest
from conftest import FRONT, PUSHER
from registry_helpers import (
    converge,
    http,
    manifest_digest,
    pull_and_check_digest,
    push_unique_image,
    recap,
)

FRONT_STATE = (
    "sha256sum /opt/registry-web/conf/nginx.conf /opt/registry-web/html/config.js "
    "/opt/registry-web/certs/web.crt /opt/registry-web/compose/compose.yml; "
    "docker inspect -f '{{.State.StartedAt}}' registry-web"
)


def test_docker_pushes_and_pulls_through_the_front(client_a):
    pushed = push_unique_image(client_a, "%s/web-demo/through-front" % FRONT)
    # The registry itself (not the front) has the very manifest docker pushed.
    direct = manifest_digest(
        client_a, "registry:5000", "web-demo/through-front", pushed["tag"], *PUSHER
    )
    assert direct == pushed["digest"]
    client_a.check_output("docker image rm %s", pushed["reference"])
    pull_and_check_digest(client_a, pushed)


def test_a_layer_far_above_nginx_default_body_limit_goes_through(client_a):
    # nginx refuses bodies over 1 MB unless told otherwise: 24 MB of noise does not compress.
    pushed = push_unique_image(
        client_a, "%s/web-demo/big" % FRONT, payload_bytes=24 * 1024 * 1024, changes=()
    )
    manifest = json.loads(
        http(
            client_a,
            "https://registry:5000/v2/web-demo/big/manifests/%s" % pushed["tag"],
            *PUSHER,
        )["body"]
    )
    assert manifest["layers"][0]["size"] > 24_000_000
    client_a.check_output("docker image rm %s", pushed["reference"])
    pull_and_check_digest(client_a, pushed)


def test_docker_clients_still_get_the_basic_auth_challenge(client_a):
    answer = http(client_a, "https://%s/v2/" % FRONT)
    assert answer["status"] == 401
    assert answer["headers"]["WWW-Authenticate"].startswith("Basic ")
    assert answer["headers"]["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_the_ui_gets_401_without_a_challenge(client_a):
    # No WWW-Authenticate for the UI's requests: the browser shows no prompt of its own.
    answer = http(client_a, "https://%s/v2/" % FRONT, headers={"X-Registry-UI": "1"})
    assert answer["status"] == 401
    assert "WWW-Authenticate" not in answer["headers"]


def test_the_ui_is_served_with_a_strict_policy(client_a):
    answer = http(client_a, "https://%s/" % FRONT)
    assert answer["status"] == 200
    assert '<script type="module" src="js/app.js"' in answer["body"]
    policy = answer["headers"]["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer["headers"]["X-Frame-Options"] == "DENY"
    config = http(client_a, "https://%s/config.js" % FRONT)["body"]
    settings = json.loads(config.split("=", 1)[1].strip().rstrip(";"))
    assert settings == {
        "title": "Molecule registry",
        "registryName": FRONT,
        "readOnly": False,
        "authEnabled": True,
        "authMode": "htpasswd",
        "pageSize": 100,
    }


def test_the_front_key_is_private_and_issued_by_the_registry_ca(web_host, server):
    key = web_host.file("/opt/registry-web/certs/web.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    chain = web_host.run(
        "openssl verify -CAfile /opt/registry-web/certs/registry-ca.crt "
        "/opt/registry-web/certs/web.crt"
    )
    assert chain.rc == 0, chain.stderr
    assert web_host.file("/opt/registry-web/certs/registry-ca.crt").content_string.strip() == (
        server.file("/opt/registry/certs/ca.crt").content_string.strip()
    )


def test_a_host_that_does_not_trust_the_ca_is_refused_by_the_front(web_host):
    # The web host itself is no registry client: the CA is not in its trust store.
    answer = http(web_host, "https://%s/v2/" % FRONT)
    assert answer["status"] is None
    assert "unable to get local issuer certificate" in answer["error"]


def test_check_mode_on_the_converged_front_changes_nothing(web_host):
    before = web_host.check_output(FRONT_STATE)
    rc, out = converge("--limit", "web", "--check", "--diff")
    assert rc == 0, out[-3000:]
    assert recap(out)["web"]["changed"] == 0
    assert web_host.check_output(FRONT_STATE) == before


def test_deletes_the_registry_would_refuse_are_refused_first(web_host):
    before = web_host.check_output(FRONT_STATE)
    rc, out = converge(
        "--limit",
        "web",
        "-e",
        "registry_server_storage_delete_enabled=false",
        "-e",
        "registry_web_read_only=false",
    )
    assert rc != 0
    assert "registry_server_storage_delete_enabled" in out
    assert "keep registry_web_read_only: true" in out
    assert recap(out)["web"]["changed"] == 0
    assert web_host.check_output(FRONT_STATE) == before


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "registry:5000/v2",
            "registry_web_registry_url ('registry:5000/v2') is not a http or https URL",
        ),
        ("https://registry:5000/v2", "registry_web_registry_url must be the registry's base URL"),
    ],
    ids=["no-scheme", "with-path"],
)
def test_a_registry_url_that_is_not_one_is_refused(web_host, url, message):
    before = web_host.check_output(FRONT_STATE)
    rc, out = converge("--limit", "web", "-e", "registry_web_registry_url=" + url)
    assert rc != 0
    assert message in out
    assert recap(out)["web"]["changed"] == 0
    assert web_host.check_output(FRONT_STATE) == before


def test_issued_tls_is_refused_in_front_of_a_registry_without_the_collections_ca(web_host, server):
    """A registry with provided (or no) TLS has no CA of the collection's: the front must
    not make one (it used to, over the registry's certs/ca.crt, which clients then trusted)."""
    before = (
        web_host.check_output(FRONT_STATE),
        server.check_output("sha256sum /opt/registry/certs/* /opt/registry-pki/ca.key"),
    )
    rc, out = converge("--limit", "web", "-e", "registry_server_tls_mode=provided")
    assert rc != 0
    assert "registry_web_tls_mode: issued needs a certificate from the CA of registry" in out
    assert "registry_web_tls_mode: provided" in out
    assert recap(out)["web"]["changed"] == 0
    after = (
        web_host.check_output(FRONT_STATE),
        server.check_output("sha256sum /opt/registry/certs/* /opt/registry-pki/ca.key"),
    )
    assert after == before
