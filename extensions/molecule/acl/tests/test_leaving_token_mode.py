"""Leaving token authentication: back to htpasswd, the token service goes away. The last
tests of the scenario (file order): they change the registry's mode."""

from __future__ import annotations

from conftest import PASSWORDS, REGISTRY
from registry_helpers import converge, http, lower_keys, recap

TOKEN_PORT_PROBE = "import socket; socket.create_connection(('127.0.0.1', 5443), timeout=3)"


def test_back_to_htpasswd_the_token_service_is_gone_and_basic_auth_works(server, client):
    rc, output = converge("-e", "registry_server_auth_mode=htpasswd")
    assert rc == 0, output
    assert server.run("systemctl is-active registry-token").stdout.strip() != "active"
    assert not server.file("/etc/systemd/system/registry-token.service").exists
    assert not server.file("/opt/registry/token").exists  # the signing keys too
    probe = server.run("python3 -c %s", TOKEN_PORT_PROBE)
    assert "ConnectionRefusedError" in probe.stderr, probe.stderr
    challenge = http(client, "https://%s/v2/" % REGISTRY)["headers"]
    assert lower_keys(challenge)["www-authenticate"].startswith("Basic ")
    assert http(client, "https://%s/v2/" % REGISTRY, "alice", PASSWORDS["alice"])["status"] == 200
    assert http(client, "https://%s/v2/" % REGISTRY, "alice", "wrong")["status"] == 401


def test_the_next_converge_changes_nothing(server):
    rc, output = converge("-e", "registry_server_auth_mode=htpasswd")
    assert rc == 0, output
    changed = {host: counters["changed"] for host, counters in recap(output).items()}
    assert set(changed.values()) == {0}, changed
