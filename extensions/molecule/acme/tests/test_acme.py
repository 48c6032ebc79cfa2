"""The registry's certificate from an ACME CA (Pebble), renewed by the host's timer; then
the same registry with an operator's root -> intermediate -> leaf chain.

The tests run in file order and share one record (STATE); the renewal figures go to
artifacts/acme.json.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from registry_helpers import (
    SERVER_STATE,
    converge,
    operator_certificate,
    pem,
    pull_and_check_digest,
    pull_load,
    push_unique_image,
    recap,
    test_host,
)

ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts"))
NAME = "registry.acme.test"
REGISTRY = NAME + ":5000"
USER, PASSWORD = "pusher", "molecule-pusher-pw"
RENEW_UNIT = "registry-acme-renew.service"
RENEW_TIMER = "registry-acme-renew.timer"
TOKEN_PORT = 5443
REALM = "https://%s:%d/token?service=privreg-registry" % (NAME, TOKEN_PORT)
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
STATE: dict = {}

# Run on the client: a TLS handshake with the registry that trusts what the client's system
# store trusts and checks the name; prints the leaf's serial, issuer and names, and how
# many certificates the registry sent.
_HANDSHAKE = r"""
import json, socket, ssl, sys
name, port = sys.argv[1], int(sys.argv[2])
context = ssl.create_default_context()
with socket.create_connection((name, port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=name) as tls:
        leaf = tls.getpeercert()
        sent = tls.get_unverified_chain()
print(json.dumps({
    "serial": leaf["serialNumber"],
    "issuer": dict(item[0] for item in leaf["issuer"]),
    "names": [value for kind, value in leaf.get("subjectAltName", ())],
    "sent": len(sent),
}))
"""


@pytest.fixture(scope="module")
def acme():
    return test_host("acme")


@pytest.fixture(scope="module")
def client(client_a):
    return client_a


def handshake(client, port=5000):
    return json.loads(client.check_output("python3 -c %s %s %s", _HANDSHAKE, NAME, str(port)))


def token_service_serves(client, serial, timeout=20):
    """True once the token service (port 5443) serves the certificate with this serial: the
    deploy hook gives it the renewed file, which it checks for every new connection."""
    deadline = time.monotonic() + timeout
    while handshake(client, TOKEN_PORT)["serial"] != serial:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def served_serial(server):
    """The serial of the certificate the registry container serves from its files."""
    return server.check_output(
        "python3 -c %s",
        "from cryptography import x509; "
        "c = x509.load_pem_x509_certificate(open('/opt/registry/certs/server.crt', 'rb').read()); "
        "print(format(c.serial_number, 'X'))",
    )


# --- ACME -------------------------------------------------------------------------------


def test_the_certificate_is_issued_by_pebble_for_the_registry_name(client, server):
    served = handshake(client)
    assert served["issuer"]["commonName"].startswith("Pebble Intermediate CA"), served
    assert served["names"] == [NAME], served
    # The leaf and Pebble's intermediate: clients build the path to the root they hold.
    assert served["sent"] == 2, served
    # ssl pads the hex serial to whole bytes; compare the numbers.
    assert int(served["serial"], 16) == int(served_serial(server), 16)
    STATE["first_serial"] = served["serial"]


def test_the_client_was_given_only_pebbles_root(client):
    root = (EPHEMERAL / "pebble-root.pem").read_text().strip()
    for path in (
        "/etc/docker/certs.d/%s/ca.crt" % REGISTRY,
        "/usr/local/share/ca-certificates/privreg-%s-5000.crt" % NAME,
    ):
        assert client.file(path).content_string.strip() == root


def test_a_client_pushes_and_pulls_by_the_registry_name(client):
    pushed = push_unique_image(client, REGISTRY + "/acme/app", payload_bytes=100_000)
    client.check_output("docker rmi %s", pushed["reference"])
    pull_and_check_digest(client, pushed)
    STATE["pushed"] = pushed


def test_port_80_is_open_only_while_a_challenge_is(server):
    probe = server.run(
        "python3 -c %s",
        "import socket; socket.create_connection(('127.0.0.1', 80), timeout=3)",
    )
    assert probe.rc != 0
    assert "ConnectionRefusedError" in probe.stderr, probe.stderr


def test_the_renewal_timer_is_installed_and_scheduled(server):
    """The tests below start the renewal's service by hand; this is what starts it in
    production: a timer, enabled and waiting with a next elapse, twice a day (the role's
    default calendar) with its randomized delay."""
    timer = server.service(RENEW_TIMER)
    assert timer.is_enabled
    assert timer.is_running  # a timer "runs" while it waits for its next elapse
    shown = server.check_output(
        "systemctl show %s -p NextElapseUSecRealtime -p TimersCalendar -p RandomizedDelayUSec",
        RENEW_TIMER,
    )
    assert "OnCalendar=*-*-* 00,12:00:00" in shown, shown
    assert "RandomizedDelayUSec=1h" in shown, shown
    next_elapse = re.search(r"^NextElapseUSecRealtime=(.*)$", shown, re.MULTILINE)
    assert next_elapse, shown
    assert next_elapse.group(1).strip(), shown  # a time is set: the timer will fire
    assert RENEW_UNIT in server.check_output("systemctl show %s -p Unit", RENEW_TIMER)


def test_a_converge_renews_a_certificate_that_is_due(server, client):
    # Pebble's certificates live five years: a threshold beyond that makes one due now.
    rc, output = converge("-e", "registry_pki_acme_renew_before_days=3000")
    assert rc == 0, output
    assert recap(output)["registry"]["changed"] > 0
    renewed = handshake(client)["serial"]
    assert renewed != STATE["first_serial"]
    assert token_service_serves(client, renewed)
    STATE["converge_serial"] = renewed


def test_the_timer_renews_without_ansible_and_no_pull_fails(server, client):
    # What the timer starts, started by hand: no Ansible run is involved.
    digest = STATE["pushed"]["digest"]
    base = "https://" + REGISTRY
    # Each pull with a fresh token from the realm, which the token service serves with
    # the same certificate: the renewal reaches both.
    with pull_load("client-a", base, USER, PASSWORD, "acme/app", digest, realm=REALM) as load:
        renewal = server.run("systemctl start %s", RENEW_UNIT)
        new_serial = handshake(client)["serial"]
        token_service_renewed = token_service_serves(client, new_serial)
    assert renewal.rc == 0, server.check_output("journalctl -u %s --no-pager -n 50", RENEW_UNIT)
    assert new_serial != STATE["converge_serial"]
    assert token_service_renewed
    STATE["timer"] = {
        "old_serial": STATE["converge_serial"],
        "new_serial": new_serial,
        "pull_requests": load["requests"],
        "pull_failed": load["failed"],
        "outage_seconds": load["outage_seconds"],
        "slowest_pull_seconds": load["slowest_seconds"],
        "failures": [f["error"] for f in load["failures"]][:5],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "acme.json").write_text(json.dumps(STATE, indent=2) + "\n")
    print(json.dumps(STATE["timer"]))
    assert load["requests"] >= 10, load
    # The registry reads its certificate only at start; while it restarts, new connections
    # wait (their SYNs are dropped, not refused) and requests in flight finish.
    assert load["failed"] == 0, load


def test_a_failed_renewal_keeps_the_certificate_and_says_why(server, acme, client):
    acme.check_output("systemctl stop pebble")
    before = server.check_output(SERVER_STATE)
    renewal = server.run("systemctl start %s", RENEW_UNIT)
    assert renewal.rc != 0
    journal = server.check_output("journalctl -u %s --no-pager -n 60", RENEW_UNIT)
    assert "Failed to renew certificate registry" in journal, journal
    assert "Connection refused" in journal, journal
    assert server.check_output(SERVER_STATE) == before
    assert handshake(client)["serial"] == STATE["timer"]["new_serial"]
    pull_and_check_digest(client, STATE["pushed"])


def test_back_to_the_usual_threshold_nothing_is_renewed(server, client):
    rc, output = converge()
    assert rc == 0, output
    assert handshake(client)["serial"] == STATE["timer"]["new_serial"]
    rc, output = converge()
    assert rc == 0, output
    changed = {host: c["changed"] for host, c in recap(output).items()}
    assert set(changed.values()) == {0}, changed


def test_without_a_private_root_clients_get_no_ca_and_pebbles_chain_fails(client):
    # What an ACME registry with a public root looks like to clients: nothing is copied
    # (the system store trusts public roots). Pebble's root is not public, so the same
    # client now refuses the registry: the root it was given was what made TLS work.
    rc, output = converge("-e", json.dumps({"registry_pki_acme_root_certificate": ""}))
    assert rc == 0, output
    assert not client.file("/etc/docker/certs.d/%s/ca.crt" % REGISTRY).exists
    assert not client.file("/usr/local/share/ca-certificates/privreg-%s-5000.crt" % NAME).exists
    pull = client.run("docker pull %s", STATE["pushed"]["reference"])
    assert pull.rc != 0
    assert "certificate signed by unknown authority" in pull.stderr, pull.stderr


# --- provided: an operator's chain ------------------------------------------------------


@pytest.fixture(scope="module")
def operator_pki():
    """root -> intermediate -> leaf for the registry's names, and two bad variants."""
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("root", "inter", "leaf", "x")}
    root = operator_certificate(
        "Test Operator Root", keys["root"], "Test Operator Root", keys["root"], True
    )
    inter = operator_certificate(
        "Test Operator Intermediate",
        keys["inter"],
        "Test Operator Root",
        keys["root"],
        True,
    )
    names = ["registry", NAME]
    leaf = operator_certificate(
        "registry", keys["leaf"], "Test Operator Intermediate", keys["inter"], False, names
    )
    other = operator_certificate(
        "other",
        keys["leaf"],
        "Test Operator Intermediate",
        keys["inter"],
        False,
        ["other.example.com"],
    )
    directory = Path(tempfile.mkdtemp(prefix="operator-pki-", dir=EPHEMERAL))
    files = {
        "root": pem(root),
        "chain": pem(leaf, inter),
        "key": pem(keys["leaf"]),
        "wrong_key": pem(keys["x"]),
        "other_chain": pem(other, inter),
    }
    for name, data in files.items():
        (directory / (name + ".pem")).write_bytes(data)
    return {name: str(directory / (name + ".pem")) for name in files} | {"root_pem": files["root"]}


def _provided(operator_pki, chain="chain", key="key"):
    return json.dumps(
        {
            "registry_server_tls_mode": "provided",
            "registry_server_tls_subject_alt_names": [NAME],
            "registry_server_tls_certificate": operator_pki[chain],
            "registry_server_tls_private_key": operator_pki[key],
            "registry_server_tls_ca_certificate": operator_pki["root"],
        }
    )


def test_an_operators_chain_is_served_and_trusted_through_the_root(server, client, operator_pki):
    rc, output = converge("-e", _provided(operator_pki))
    assert rc == 0, output
    served = handshake(client)
    assert served["issuer"]["commonName"] == "Test Operator Intermediate", served
    assert served["sent"] == 2, served
    # The client holds the root only; the registry sends the intermediate.
    ca = client.file("/etc/docker/certs.d/%s/ca.crt" % REGISTRY).content_string
    assert ca.strip() == operator_pki["root_pem"].decode().strip()
    pushed = push_unique_image(client, REGISTRY + "/operator/app")
    client.check_output("docker rmi %s", pushed["reference"])
    pull_and_check_digest(client, pushed)
    pull_and_check_digest(client, STATE["pushed"])
    # No ACME timer is left to replace the operator's certificate.
    assert not server.file("/etc/systemd/system/" + RENEW_TIMER).exists
    assert server.run("systemctl is-active %s", RENEW_TIMER).stdout.strip() != "active"


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"key": "wrong_key"}, "key_mismatch"),
        ({"chain": "other_chain"}, "the certificate is not for DNS:registry"),
    ],
)
def test_bad_operator_material_is_refused_before_anything_changes(
    server, operator_pki, variant, message
):
    before = server.check_output(SERVER_STATE)
    rc, output = converge("-e", _provided(operator_pki, **variant))
    assert rc != 0
    assert message in output, output
    assert "PRIVATE KEY" not in output
    assert recap(output)["registry"]["changed"] == 0
    assert server.check_output(SERVER_STATE) == before
