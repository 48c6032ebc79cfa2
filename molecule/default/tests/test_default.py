"""The registry as its users rely on it: an image pushed from one host over TLS, by the
registry's host name, pulls on another with the same digest; what must fail, fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import http, unique_image

BCRYPT_LINE = re.compile(r"^[^:\s]+:\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
SCENARIO_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pushed(client_a, registry):
    """client-a pushes a fresh image; returns its reference, tag and pushed digest."""
    reference, tag = unique_image(client_a, registry + "/smoke/hello")
    out = client_a.check_output("docker push %s", reference)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
    return {"reference": reference, "tag": tag, "digest": digest}


def test_image_pushed_on_one_host_pulls_on_another_with_same_digest(client_b, pushed):
    client_b.check_output("docker pull %s", pushed["reference"])
    inspect = "docker image inspect --format '{{json .RepoDigests}}' %s"
    repo_digests = json.loads(client_b.check_output(inspect, pushed["reference"]))
    assert any(d.endswith("@" + pushed["digest"]) for d in repo_digests), repo_digests


def test_registry_api_lists_the_image(client_a, registry, credentials, pushed):
    user, password = credentials("client-a")
    catalog = http(client_a, "https://%s/v2/_catalog" % registry, user, password)
    assert catalog["status"] == 200
    assert "smoke/hello" in json.loads(catalog["body"])["repositories"]
    tags = http(client_a, "https://%s/v2/smoke/hello/tags/list" % registry, user, password)
    assert pushed["tag"] in json.loads(tags["body"])["tags"]
    manifest_url = "https://%s/v2/smoke/hello/manifests/%s" % (registry, pushed["tag"])
    manifest = http(client_a, manifest_url, user, password, "HEAD")
    assert manifest["status"] == 200
    assert manifest["headers"]["Docker-Content-Digest"] == pushed["digest"]


def test_anonymous_catalog_is_refused(client_a, registry):
    answer = http(client_a, "https://%s/v2/_catalog" % registry)
    assert answer["status"] == 401
    assert "basic" in answer["headers"].get("Www-Authenticate", "").lower()


def test_wrong_password_fails_login(client_b, registry, credentials):
    user, _ = credentials("client-b")
    # A throwaway DOCKER_CONFIG: the host's real login stays as it is.
    result = client_b.run(
        "cfg=$(mktemp -d); echo wrong-password | DOCKER_CONFIG=$cfg "
        "docker login -u %s --password-stdin %s; rc=$?; rm -rf $cfg; exit $rc",
        user,
        registry,
    )
    assert result.rc != 0
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower()


def test_right_password_logs_in(client_b, registry, credentials):
    # The positive twin of the test above: the same command with the real password works.
    user, password = credentials("client-b")
    result = client_b.run(
        "cfg=$(mktemp -d); echo %s | DOCKER_CONFIG=$cfg "
        "docker login -u %s --password-stdin %s; rc=$?; rm -rf $cfg; exit $rc",
        password,
        user,
        registry,
    )
    assert result.rc == 0, result.stderr


def test_host_without_the_ca_gets_a_certificate_error(outsider, client_a, registry):
    untrusted = http(outsider, "https://%s/v2/" % registry)
    assert untrusted["status"] is None
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]
    # Same request from an onboarded host: TLS succeeds and auth is what stops it.
    assert http(client_a, "https://%s/v2/" % registry)["status"] == 401


def test_debug_port_is_private(server, client_a):
    health = http(server, "http://127.0.0.1:5001/debug/health")
    assert health["status"] == 200
    assert json.loads(health["body"]) == {}
    metrics = http(server, "http://127.0.0.1:5001/metrics")
    assert metrics["status"] == 200
    assert "registry_" in metrics["body"]
    from_client = http(client_a, "http://registry:5001/debug/health")
    assert from_client["status"] is None, from_client


def test_secrets_are_not_world_readable(server):
    for path in (
        "/opt/registry/certs/server.key",
        "/opt/registry/security/ca.key",
        "/opt/registry/security/htpasswd",
        "/opt/registry/security/http_secret",
        "/opt/registry/config/config.yml",
    ):
        f = server.file(path)
        assert f.exists, path
        assert f.user == "root", path
        assert f.mode & 0o077 == 0, "%s has mode %o" % (path, f.mode)
    assert server.file("/opt/registry/security").mode == 0o700


def test_htpasswd_holds_only_bcrypt_entries(server):
    lines = server.file("/opt/registry/security/htpasswd").content_string.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["puller", "pusher"]
    assert all(BCRYPT_LINE.match(line) for line in lines), lines


def test_config_names_exactly_one_storage_driver(server):
    config = yaml.safe_load(server.file("/opt/registry/config/config.yml").content_string)
    drivers = set(config["storage"]) - {"delete", "redirect", "cache", "maintenance"}
    assert drivers == {"filesystem"}
    assert config["http"]["tls"]["minimumtls"] == "tls1.2"
    assert config["http"]["headers"]["X-Content-Type-Options"] == ["nosniff"]
    assert len(config["http"]["secret"]) >= 32


def test_certificate_names_the_host_clients_use(server):
    sans = server.check_output(
        'python3 -c "from cryptography import x509; '
        "c = x509.load_pem_x509_certificate(open('/opt/registry/certs/server.crt','rb').read()); "
        'print(c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)"'
    )
    assert "value='registry'" in sans


def test_refused_input_changes_nothing(server):
    """A bad variable stops the play before any task changes the host."""
    state = (
        "sha256sum /opt/registry/config/config.yml /opt/registry/security/htpasswd "
        "/opt/registry/certs/server.crt; docker inspect -f '{{.State.StartedAt}}' registry"
    )
    before = server.check_output(state)
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(SCENARIO_DIR / "converge.yml"),
            "--limit",
            "registry",
            "-e",
            json.dumps(
                {
                    "registry_server_users": [{"name": "bad:name", "password": "x"}],
                    "registry_server_storage_delete_enabled": True,
                }
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "registry_server_users[0] name bad:name contains ':'" in output
    assert re.search(r"registry\s*:\s*ok=\d+\s+changed=0\s", output), output
    after = server.check_output(state)
    assert after == before
