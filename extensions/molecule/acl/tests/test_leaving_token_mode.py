"""Leaving token authentication: back to htpasswd, the token service goes away. The last
tests of the scenario (file order): they change the registry's mode."""

from __future__ import annotations

import json

from conftest import PASSWORDS, REGISTRY
from registry_helpers import converge, http, lower_keys, recap

TOKEN_PORT_PROBE = "import socket; socket.create_connection(('127.0.0.1', 5443), timeout=3)"
# What an operator sets to leave: htpasswd mode, and no robots or directory (sign-ins of the
# token service, which preflight refuses without it).
LEAVE = json.dumps(
    {
        "registry_server_auth_mode": "htpasswd",
        "registry_token_robots": [],
        "registry_token_ldap_urls": [],
    }
)


def test_robots_or_a_directory_without_token_mode_are_refused_before_anything_changes():
    rc, output = converge("-e", "registry_server_auth_mode=htpasswd", "--limit", "registry")
    assert rc != 0
    assert "registry_token_robots and registry_token_ldap_urls are sign-ins of the token" in output
    assert recap(output)["registry"]["changed"] == 0


def test_back_to_htpasswd_the_token_service_is_gone_and_basic_auth_works(server, client):
    rc, output = converge("-e", LEAVE)
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
    rc, output = converge("-e", LEAVE)
    assert rc == 0, output
    changed = {host: counters["changed"] for host, counters in recap(output).items()}
    assert set(changed.values()) == {0}, changed
