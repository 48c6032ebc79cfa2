"""What the acl scenario's tests share: names, passwords, docker as another user, and the
browser's way to the web front (the fixtures every scenario shares: ../../conftest.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
import pytest
from registry_helpers import container_address, http

ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts"))
REGISTRY = "registry:5000"
REALM = "https://registry:5443/token"
# The web front runs on the registry host, on port 443.
FRONT = "registry"
SERVICE, ISSUER = "privreg-registry", "privreg-token-service"
PASSWORDS = {
    "alice": "molecule-alice-pw",
    "bob": "molecule-bob-pw",
    "carol": "molecule-carol-pw",
    "root-admin": "molecule-admin-pw",
}

# The token settings the registry has after test_acl.py's last test (key 3 signs, key 2
# revoked, 9 threads): a later converge passes them too, or it rotates the key again and
# restarts the service for its unit.
AFTER_ROTATION = {
    "registry_token_signing_key_id": "3",
    "registry_token_threads": 9,
    "registry_token_revoked_key_ids": ["2"],
}

# The directory's people (tests/lab/slapd-setup.sh) and the robots of molecule.yml.
DIRECTORY = {"dave": "dave-ldap-pw", "erin": "erin-ldap-pw", "alice": "alice-ldap-pw"}
ROBOT_SECRETS = {
    "robot$ci": "molecule robot: ci $ecret",
    "robot$expired": "molecule robot: expired one",
}


def ask(host, user, password, *scopes):
    """A token request to the registry's realm from `host`: http()'s answer."""
    query = "service=%s" % SERVICE + "".join("&scope=%s" % scope for scope in scopes)
    return http(host, REALM + "?" + query, user, password)


def granted(answer):
    """(type, name) -> the actions the token grants."""
    assert answer["status"] == 200, answer
    token = json.loads(answer["body"])["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    return {(item["type"], item["name"]): sorted(item["actions"]) for item in claims["access"]}


@pytest.fixture(scope="module")
def client(client_a):
    return client_a


def docker_as(client, user, command, *args, registry=REGISTRY):
    """Run a docker command on the client as `user` (a DOCKER_CONFIG of its own, logged in
    to `registry` on first use; anonymous: no login)."""
    config = "/root/docker-%s" % user
    client.check_output("mkdir -p %s", config)
    logged_in = client.run("grep -qF %s %s/config.json", '"%s"' % registry, config).rc == 0
    if user != "anonymous" and not logged_in:
        client.check_output(
            "echo %s | DOCKER_CONFIG=%s docker login -u %s --password-stdin %s",
            PASSWORDS[user],
            config,
            user,
            registry,
        )
    return client.run("DOCKER_CONFIG=%s docker " + command, config, *args)


@pytest.fixture(scope="session")
def front_name():
    return FRONT


@pytest.fixture(scope="session")
def front_address():
    return container_address("registry")


# Run on a client (argv: url user password threads seconds): `threads` callers fetch tokens
# (HTTPS, basic credentials, a new connection each time as docker does) for `seconds`; how
# many, how many were held back (429: more logins at once than the service checks, its
# designed answer, Retry-After 1), how many failed otherwise, p50 and p95 in ms (as JSON).
# Every attempt is counted; none is retried.
TOKEN_LOAD = r"""
import base64, json, ssl, sys, threading, time, urllib.request
url, user, password = sys.argv[1:4]
threads, seconds = int(sys.argv[4]), float(sys.argv[5])
auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
import urllib.error
latencies, failures, held, lock = [], [], [], threading.Lock()
end = time.monotonic() + seconds
def caller():
    while time.monotonic() < end:
        started = time.monotonic()
        status = None
        try:
            request = urllib.request.Request(url, headers={"Authorization": auth})
            with urllib.request.urlopen(request, timeout=30) as response:
                ok = response.status == 200 and json.load(response).get("token")
        except urllib.error.HTTPError as exc:
            ok, status = False, exc.code
        except Exception as exc:
            ok = False
        with lock:
            bucket = latencies if ok else held if status == 429 else failures
            bucket.append((time.monotonic() - started) * 1000)
workers = [threading.Thread(target=caller) for _ in range(threads)]
for worker in workers: worker.start()
for worker in workers: worker.join()
latencies.sort()
print(json.dumps({"tokens": len(latencies), "held_back": len(held), "failed": len(failures),
                  "seconds": seconds,
                  "p50_ms": latencies[len(latencies) // 2] if latencies else None,
                  "p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else None}))
"""


def assert_token_load(load):
    """No attempt failed; held back (429) at most 2 % of them: the bound on password checks
    answers a burst beyond what the cores can check, not a steady load of 20 callers."""
    assert load["failed"] == 0, load
    assert load["tokens"] > 0, load
    assert load["held_back"] <= 0.02 * (load["tokens"] + load["held_back"]), load
