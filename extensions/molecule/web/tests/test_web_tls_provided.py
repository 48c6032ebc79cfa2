"""registry_web_tls_mode: provided: the front serves the operator's certificate, and a key
that is not the certificate's is refused before anything on the host changes. Runs after
the other files: it converges the front with the operator's material, then back."""

import hashlib
import ssl

import pytest
from conftest import FRONT
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from registry_helpers import container_address, converge, operator_certificate, pem, recap

FILES = ("/opt/registry-web/certs/web.crt", "/opt/registry-web/certs/web.key")
# The registry's CA, which signed the front's certificate in issued mode (the client was
# onboarded to the front: ../converge.yml).
REGISTRY_CA = "/etc/docker/certs.d/%s/ca.crt" % FRONT
# The status a client gets for /v2/ without credentials on a connection verified with the
# CA file given, or why the connection failed.
PROBE = (
    "import ssl,sys,urllib.request,urllib.error\n"
    "context = ssl.create_default_context(cafile=sys.argv[2])\n"
    "try: urllib.request.urlopen(sys.argv[1], context=context)\n"
    "except urllib.error.HTTPError as e: print(e.code)\n"
    "except urllib.error.URLError as e: print(e.reason)\n"
)


def served_fingerprint():
    """SHA-256 of the certificate the front serves (fetched without verifying it)."""
    served = ssl.get_server_certificate((container_address("web"), 443), timeout=10)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest()


def probe(client, ca_file):
    return client.check_output("python3 -c %s https://%s/v2/ %s", PROBE, FRONT, ca_file)


@pytest.fixture(scope="module")
def operator_material(tmp_path_factory):
    """An operator's CA and its server certificate for the front's name, and a key that
    belongs to neither, as files on the controller."""
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "leaf", "other")}
    root = "Operator Root for the web test"
    ca = operator_certificate(root, keys["ca"], root, keys["ca"], True)
    leaf = operator_certificate(FRONT, keys["leaf"], root, keys["ca"], False, [FRONT])
    directory = tmp_path_factory.mktemp("operator-tls")
    files = {"ca": pem(ca), "cert": pem(leaf), "key": pem(keys["leaf"])}
    files["other_key"] = pem(keys["other"])
    paths = {name: directory / (name + ".pem") for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    return paths, leaf.fingerprint(hashes.SHA256()).hex()


def provided(paths, key="key"):
    return (
        "-e",
        "registry_web_tls_mode=provided",
        "-e",
        "registry_web_tls_certificate=%s" % paths["cert"],
        "-e",
        "registry_web_tls_private_key=%s" % paths[key],
    )


@pytest.fixture(scope="module")
def issued_fingerprint():
    return served_fingerprint()


def test_a_key_of_another_certificate_is_refused_and_changes_nothing(
    web_host, operator_material, issued_fingerprint
):
    paths = operator_material[0]
    before = web_host.check_output("sha256sum %s %s", *FILES)
    rc, out = converge("--limit", "web", *provided(paths, key="other_key"))
    assert rc != 0, out[-3000:]
    assert "the private key is not the certificate's" in out, out[-3000:]
    assert recap(out)["web"]["changed"] == 0
    assert web_host.check_output("sha256sum %s %s", *FILES) == before
    assert served_fingerprint() == issued_fingerprint
    # Neither key reaches the output (a line of each key's base64 body).
    for key in ("key", "other_key"):
        assert paths[key].read_text().splitlines()[1] not in out


@pytest.fixture(scope="module")
def provided_front(operator_material, issued_fingerprint, client_a):
    paths = operator_material[0]
    rc, out = converge("--limit", "web", *provided(paths))
    assert rc == 0, out[-3000:]
    assert recap(out)["web"]["changed"] > 0
    rc, again = converge("--limit", "web", *provided(paths))
    assert rc == 0, again[-3000:]
    yield recap(again)["web"]["changed"]
    # Back to a certificate from the registry's CA, which its clients trust again.
    rc, out = converge("--limit", "web")
    assert rc == 0, out[-3000:]
    assert probe(client_a, REGISTRY_CA) == "401"


def test_the_front_serves_the_operators_certificate_and_a_second_run_changes_nothing(
    provided_front, operator_material, issued_fingerprint
):
    fingerprint = operator_material[1]
    assert served_fingerprint() == fingerprint != issued_fingerprint
    assert provided_front == 0


def test_clients_that_trust_the_operators_ca_reach_the_front(
    provided_front, operator_material, client_a
):
    paths = operator_material[0]
    client_a.check_output("printf '%%s' %s > /tmp/operator-ca.crt", paths["ca"].read_text())
    assert probe(client_a, "/tmp/operator-ca.crt") == "401"
    # The control: the registry's CA, which signed the front's certificate before, does not
    # vouch for the operator's.
    refused = probe(client_a, REGISTRY_CA)
    assert "CERTIFICATE_VERIFY_FAILED" in refused, refused
