"""registry_tls: create, keep, and regenerate only for a reason."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.privreg.registry.plugins.module_utils import tls
from ansible_collections.privreg.registry.plugins.modules import registry_tls

SANS = ["registry.lab", "registry", "10.0.0.5"]


@pytest.fixture
def paths(tmp_path):
    return {
        "ca_cert_path": str(tmp_path / "ca.crt"),
        "ca_key_path": str(tmp_path / "ca.key"),
        "cert_path": str(tmp_path / "server.crt"),
        "key_path": str(tmp_path / "server.key"),
    }


@pytest.fixture
def tls_module(run_module, paths):
    def _run(check_mode=False, diff=False, **overrides):
        args = dict(paths, subject_alt_names=SANS, key_type="ecdsa")
        args.update(overrides)
        return run_module(registry_tls.main, args, check_mode=check_mode, diff=diff)

    return _run


def load_cert(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def public_key_bytes(path):
    with open(path, "rb") as handle:
        return (
            tls.load_private_key(handle.read(), path)
            .public_key()
            .public_bytes(
                tls.serialization.Encoding.DER, tls.serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def test_creates_ca_and_server_certificate(tls_module, paths):
    code, result = tls_module()
    assert code == 0
    assert result["changed"]
    assert result["ca_changed"]
    assert result["reasons"] == ["ca_renewed", "missing"]
    assert result["subject_alt_names"] == ["DNS:registry", "DNS:registry.lab", "IP:10.0.0.5"]
    cert, ca = load_cert(paths["cert_path"]), load_cert(paths["ca_cert_path"])
    assert tls.issued_by(cert, ca)
    assert tls.common_name(cert) == "registry.lab"
    assert result["fingerprint"] == tls.fingerprint(cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_keys_are_private_and_certificates_readable(tls_module, paths):
    tls_module()
    for name in ("ca_key_path", "key_path"):
        assert stat.S_IMODE(os.stat(paths[name]).st_mode) == 0o600
    for name in ("ca_cert_path", "cert_path"):
        assert stat.S_IMODE(os.stat(paths[name]).st_mode) == 0o644
    assert not [f for f in os.listdir(os.path.dirname(paths["cert_path"])) if f.endswith(".tmp")]


def test_second_run_changes_nothing(tls_module, paths):
    first = tls_module()[1]
    before = {name: Path(path).read_bytes() for name, path in paths.items()}
    second = tls_module()[1]
    assert second["changed"] is False
    assert second["reasons"] == []
    assert second["fingerprint"] == first["fingerprint"]
    assert {name: Path(path).read_bytes() for name, path in paths.items()} == before


def test_check_mode_writes_nothing(tls_module, paths):
    result = tls_module(check_mode=True)[1]
    assert result["changed"] is True
    assert result["reasons"] == ["ca_renewed", "missing"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_check_mode_reports_pending_san_change(tls_module, paths):
    tls_module()
    before = Path(paths["cert_path"]).read_bytes()
    result = tls_module(check_mode=True, subject_alt_names=SANS + ["reg2.lab"])[1]
    assert result["changed"]
    assert result["reasons"] == ["sans_changed"]
    assert Path(paths["cert_path"]).read_bytes() == before


def test_new_san_reissues_certificate_and_keeps_keys_and_ca(tls_module, paths):
    first = tls_module()[1]
    server_key, ca_pem = (
        public_key_bytes(paths["key_path"]),
        Path(paths["ca_cert_path"]).read_bytes(),
    )
    result = tls_module(subject_alt_names=SANS + ["reg2.lab"])[1]
    assert result["changed"]
    assert result["reasons"] == ["sans_changed"]
    assert result["ca_changed"] is False
    assert "DNS:reg2.lab" in result["subject_alt_names"]
    assert result["fingerprint"] != first["fingerprint"]
    assert public_key_bytes(paths["key_path"]) == server_key
    assert Path(paths["ca_cert_path"]).read_bytes() == ca_pem


def test_san_order_and_case_do_not_matter(tls_module):
    tls_module()
    result = tls_module(subject_alt_names=["registry.lab.", "IP:10.0.0.5", "REGISTRY"])[1]
    assert result["changed"] is False


def test_expiring_certificate_is_reissued(tls_module, paths):
    tls_module(valid_days=10)
    result = tls_module(valid_days=365)[1]
    assert result["reasons"] == ["expiring"]
    assert (tls.not_after(load_cert(paths["cert_path"])) - tls.utcnow()).days >= 364


def test_threshold_decides_what_expiring_means(tls_module):
    tls_module(valid_days=10)
    result = tls_module(renew_before_days=5)[1]
    assert result["changed"] is False


def test_key_that_does_not_match_is_detected(tls_module, paths):
    tls_module()
    other = ec.generate_private_key(ec.SECP256R1())
    with open(paths["key_path"], "wb") as handle:
        handle.write(tls.key_to_pem(other))
    result = tls_module()[1]
    assert result["reasons"] == ["key_mismatch"]
    cert = load_cert(paths["cert_path"])
    assert tls.key_matches(other, cert)


def test_lost_ca_renews_ca_and_reissues_server_certificate(tls_module, paths):
    tls_module()
    os.unlink(paths["ca_key_path"])
    os.unlink(paths["ca_cert_path"])
    result = tls_module()[1]
    assert result["ca_changed"] is True
    assert set(result["reasons"]) == {"ca_renewed", "not_issued_by_ca"}
    assert tls.issued_by(load_cert(paths["cert_path"]), load_cert(paths["ca_cert_path"]))


def test_expiring_ca_is_renewed(tls_module, paths):
    tls_module(ca_valid_days=20)
    result = tls_module()[1]
    assert result["ca_changed"] is True
    assert "ca_renewed" in result["reasons"]
    assert (tls.not_after(load_cert(paths["ca_cert_path"])) - tls.utcnow()).days >= 3649


def test_certificate_from_another_ca_is_reissued(tls_module, paths, tmp_path):
    tls_module()
    other = dict(paths, ca_cert_path=str(tmp_path / "o.crt"), ca_key_path=str(tmp_path / "o.key"))
    tls_module(**other, force=True)
    result = tls_module()[1]
    assert result["reasons"] == ["not_issued_by_ca"]


def test_force_reissues(tls_module):
    first = tls_module()[1]
    result = tls_module(force=True)[1]
    assert result["reasons"] == ["forced"]
    assert result["fingerprint"] != first["fingerprint"]


def test_loose_key_mode_is_tightened(tls_module, paths):
    tls_module()
    os.chmod(paths["key_path"], 0o644)
    result = tls_module()[1]
    assert result["changed"] is True
    assert result["reasons"] == []
    assert stat.S_IMODE(os.stat(paths["key_path"]).st_mode) == 0o600


def test_diff_has_names_and_fingerprints_but_no_key_material(tls_module, paths):
    result = tls_module(diff=True)[1]
    after = result["diff"]["after"]
    assert "DNS:registry.lab" in after
    assert result["fingerprint"] in after
    assert "PRIVATE KEY" not in str(result)
    assert result["diff"]["before"] == "ca: absent\nserver: absent\n"


def test_rsa_keys(tls_module, paths):
    result = tls_module(key_type="rsa", key_size=2048)[1]
    assert result["changed"]
    key = tls.load_private_key(Path(paths["key_path"]).read_bytes(), "key")
    assert key.key_size == 2048


def test_bad_san_is_refused_before_anything_is_written(tls_module, paths):
    code, result = tls_module(subject_alt_names=["IP:not-an-ip"])
    assert code == 1
    assert "subject_alt_names" in result["msg"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_no_names_is_refused(tls_module, paths):
    code, result = tls_module(subject_alt_names=[])
    assert code == 1
    assert "subject_alt_names" in result["msg"]


def test_short_rsa_key_is_refused(tls_module):
    code, result = tls_module(key_type="rsa", key_size=1024)
    assert code == 1
    assert "key_size" in result["msg"]


def test_verify_accepts_good_material_and_reports_missing_names(tls_module, paths):
    tls_module()
    before = {name: Path(path).read_bytes() for name, path in paths.items()}
    code, result = tls_module(state="verify", subject_alt_names=["registry.lab", "other.lab"])
    assert code == 0
    assert result["changed"] is False
    assert result["missing_sans"] == ["DNS:other.lab"]
    assert {name: Path(path).read_bytes() for name, path in paths.items()} == before


def test_verify_refuses_key_of_another_certificate(tls_module, paths):
    tls_module()
    with open(paths["key_path"], "wb") as handle:
        handle.write(tls.key_to_pem(ec.generate_private_key(ec.SECP256R1())))
    code, result = tls_module(state="verify")
    assert code == 1
    assert "key_mismatch" in result["msg"]


def test_verify_refuses_missing_files(tls_module, paths):
    code, result = tls_module(state="verify")
    assert code == 1
    assert "no CA certificate at %s" % paths["ca_cert_path"] in result["msg"]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a.example", "A.EXAMPLE."], ["DNS:a.example"]),
        (["DNS:x", "IP:::1", "127.0.0.1"], ["DNS:x", "IP:127.0.0.1", "IP:::1"]),
        (["", "  "], []),
    ],
)
def test_normalize_sans(names, expected):
    assert tls.normalize_sans(names) == expected


@pytest.mark.parametrize("bad", ["a b", "http://x", "IP:300.1.1.1"])
def test_normalize_sans_refuses(bad):
    with pytest.raises(tls.TLSMaterialError):
        tls.normalize_sans([bad])


def test_client_certificate_comes_from_the_existing_ca(tls_module, paths, tmp_path):
    tls_module()
    ca_pem = Path(paths["ca_cert_path"]).read_bytes()
    client = dict(
        paths,
        cert_path=str(tmp_path / "client.crt"),
        key_path=str(tmp_path / "client.key"),
        subject_alt_names=[],
    )
    result = tls_module(purpose="client", common_name="build01", **client)[1]
    assert result["changed"]
    assert result["ca_changed"] is False
    cert = load_cert(client["cert_path"])
    assert tls.extended_key_usage(cert) == {"client"}
    assert tls.common_name(cert) == "build01"
    assert tls.issued_by(cert, load_cert(paths["ca_cert_path"]))
    assert Path(paths["ca_cert_path"]).read_bytes() == ca_pem
    assert stat.S_IMODE(os.stat(client["key_path"]).st_mode) == 0o600
    again = tls_module(purpose="client", common_name="build01", **client)[1]
    assert again["changed"] is False


def test_client_certificate_without_a_ca_is_refused(tls_module, paths):
    code, result = tls_module(purpose="client", common_name="build01", subject_alt_names=[])
    assert code == 1
    assert "Deploy the registry server (with its own CA) first" in result["msg"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_certificate_for_the_wrong_purpose_is_reissued(tls_module, paths):
    tls_module()
    # Reissue the server's certificate as a client certificate, then ask for a server one.
    tls_module(purpose="client", common_name="registry.lab", force=True)
    result = tls_module()[1]
    assert "usage_changed" in result["reasons"]
    assert tls.extended_key_usage(load_cert(paths["cert_path"])) == {"server"}


# --- CA ownership: a caller that does not own the CA can never make one ----------------------


def test_create_ca_false_issues_from_the_existing_ca(tls_module, paths, tmp_path):
    tls_module()
    ca_before = Path(paths["ca_cert_path"]).read_bytes()
    other = dict(cert_path=str(tmp_path / "web.crt"), key_path=str(tmp_path / "web.key"))
    code, result = tls_module(create_ca=False, subject_alt_names=["web.lab"], **other)
    assert code == 0
    assert result["changed"]
    assert result["ca_changed"] is False
    assert Path(paths["ca_cert_path"]).read_bytes() == ca_before
    assert tls.issued_by(load_cert(other["cert_path"]), load_cert(paths["ca_cert_path"]))


def test_create_ca_false_without_a_ca_fails_and_writes_nothing(tls_module, paths):
    code, result = tls_module(create_ca=False)
    assert code == 1
    assert "create_ca is false" in result["msg"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_create_ca_false_in_check_mode_reports_the_missing_ca(tls_module, paths):
    code, result = tls_module(create_ca=False, check_mode=True, diff=True)
    assert code == 0
    assert result["changed"]
    assert result["reasons"] == ["ca_missing"]
    assert result["ca_changed"] is False
    assert "ca: absent" in result["diff"]["after"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_an_expiring_ca_is_not_replaced_by_a_caller_that_does_not_own_it(tls_module, paths):
    tls_module(ca_valid_days=10, renew_before_days=5)
    ca_before = Path(paths["ca_cert_path"]).read_bytes()
    code, result = tls_module(create_ca=False, renew_before_days=30)
    assert code == 1
    assert "expiring" in result["msg"]
    assert Path(paths["ca_cert_path"]).read_bytes() == ca_before


def test_create_ca_with_purpose_client_is_refused(tls_module):
    code, result = tls_module(purpose="client", common_name="c", create_ca=True)
    assert code == 1
    assert "create_ca=true with purpose=client" in result["msg"]


@pytest.mark.parametrize("which", ["ca_key_path", "ca_cert_path"])
def test_unparseable_ca_material_fails_and_is_kept(tls_module, paths, which):
    """An encrypted CA key (or a damaged CA file) is the operator's: never overwrite it."""
    tls_module()
    garbage = (
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nnot a key we can read\n"
        b"-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    Path(paths[which]).write_bytes(garbage)
    before = {name: Path(path).read_bytes() for name, path in paths.items()}
    code, result = tls_module(force=True)
    assert code == 1
    assert "does not overwrite it" in result["msg"]
    assert {name: Path(path).read_bytes() for name, path in paths.items()} == before


def test_unparseable_leaf_is_reissued(tls_module, paths):
    tls_module()
    Path(paths["cert_path"]).write_bytes(b"garbage")
    code, result = tls_module()
    assert code == 0
    assert result["reasons"] == ["missing"]
    assert tls.issued_by(load_cert(paths["cert_path"]), load_cert(paths["ca_cert_path"]))


# --- state=verify: the operator's chain, checked like a client would -------------------------


def _ca(name, signer_key=None, signer_cert=None, days=30, not_before_delta=-5):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = tls.utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(minutes=not_before_delta))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer_key or key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture
def operator_chain(paths):
    """root -> intermediate -> leaf for registry.lab, as an operator's CA would issue."""
    root_key, root = _ca("Operator Root")
    inter_key, inter = _ca("Operator Intermediate", root_key, root)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = tls.build_leaf_certificate(
        inter_key, inter, leaf_key, "registry.lab", tls.normalize_sans(SANS), 30
    )
    Path(paths["ca_cert_path"]).write_bytes(tls.cert_to_pem(root))
    Path(paths["cert_path"]).write_bytes(tls.cert_to_pem(leaf) + tls.cert_to_pem(inter))
    Path(paths["key_path"]).write_bytes(tls.key_to_pem(leaf_key))
    return {"root": (root_key, root), "inter": (inter_key, inter), "leaf": (leaf_key, leaf)}


def test_verify_accepts_a_full_chain_to_the_root(tls_module, operator_chain):
    code, result = tls_module(state="verify")
    assert code == 0, result
    assert result["chain_length"] == 2
    assert result["missing_sans"] == []


def test_verify_refuses_a_leaf_without_its_intermediate(tls_module, paths, operator_chain):
    leaf = operator_chain["leaf"][1]
    Path(paths["cert_path"]).write_bytes(tls.cert_to_pem(leaf))
    code, result = tls_module(state="verify")
    assert code == 1
    assert "is not signed by the CA given (Operator Root)" in result["msg"]


def test_verify_refuses_a_self_signed_leaf_whatever_ca_is_given(tls_module, paths, operator_chain):
    key = operator_chain["leaf"][0]
    own = tls.build_leaf_certificate(
        key,
        tls.build_ca(key, "registry.lab", 30),
        key,
        "registry.lab",
        tls.normalize_sans(SANS),
        30,
    )
    Path(paths["cert_path"]).write_bytes(tls.cert_to_pem(own))
    code, result = tls_module(state="verify")
    assert code == 1
    assert "not signed by the CA given" in result["msg"]


def test_verify_refuses_a_ca_certificate_as_the_server_certificate(
    tls_module, paths, operator_chain
):
    inter_key, inter = operator_chain["inter"]
    Path(paths["cert_path"]).write_bytes(tls.cert_to_pem(inter))
    Path(paths["key_path"]).write_bytes(tls.key_to_pem(inter_key))
    code, result = tls_module(state="verify")
    assert code == 1
    assert "is a CA certificate" in result["msg"]


def test_verify_refuses_a_client_certificate_for_a_server(tls_module, paths, operator_chain):
    inter_key, inter = operator_chain["inter"]
    key = operator_chain["leaf"][0]
    client = tls.build_leaf_certificate(
        inter_key, inter, key, "registry.lab", tls.normalize_sans(SANS), 30, usage="client"
    )
    Path(paths["cert_path"]).write_bytes(tls.cert_to_pem(client) + tls.cert_to_pem(inter))
    code, result = tls_module(state="verify")
    assert code == 1
    assert "extended key usage lacks serverauth" in result["msg"]


def test_verify_refuses_a_certificate_not_yet_valid(tls_module, paths, operator_chain):
    root_key, root = operator_chain["root"]
    inter_key, future = _ca("Future Intermediate", root_key, root, not_before_delta=24 * 60)
    key = operator_chain["leaf"][0]
    leaf = tls.build_leaf_certificate(
        inter_key, future, key, "registry.lab", tls.normalize_sans(SANS), 30
    )
    Path(paths["cert_path"]).write_bytes(tls.cert_to_pem(leaf) + tls.cert_to_pem(future))
    code, result = tls_module(state="verify")
    assert code == 1
    assert "Future Intermediate is not valid before" in result["msg"]


# --- Name constraints: the CA may only vouch for the registry's own names ----------------------


def _client_verifies(ca_path, cert_path, hostname):
    """What a TLS client would conclude (cryptography's RFC 5280 verifier, which applies
    name constraints like Go and OpenSSL do)."""
    from cryptography.x509 import DNSName, verification

    store = verification.Store([load_cert(ca_path)])
    verifier = verification.PolicyBuilder().store(store).build_server_verifier(DNSName(hostname))
    try:
        verifier.verify(load_cert(cert_path), [])
        return True
    except verification.VerificationError:
        return False


def test_a_new_ca_carries_its_name_constraints(tls_module, paths):
    code, result = tls_module(ca_name_constraints=["registry.lab", "registry", "10.0.0.0/24"])
    assert code == 0, result
    constraints = tls.ca_constraints(load_cert(paths["ca_cert_path"]))
    assert constraints == ["DNS:registry", "DNS:registry.lab", "IP:10.0.0.0/24"]
    assert _client_verifies(paths["ca_cert_path"], paths["cert_path"], "registry.lab")


def test_a_leaf_outside_the_constraints_is_refused_before_anything_is_written(
    tls_module, paths, tmp_path
):
    tls_module(ca_name_constraints=["lab", "registry", "10.0.0.0/24"])
    other = dict(cert_path=str(tmp_path / "w.crt"), key_path=str(tmp_path / "w.key"))
    code, result = tls_module(create_ca=False, subject_alt_names=["bank.example"], **other)
    assert code == 1
    assert "may only vouch for DNS:lab, DNS:registry, IP:10.0.0.0/24" in result["msg"]
    assert "DNS:bank.example" in result["msg"]
    assert not os.path.exists(other["cert_path"])
    code, result = tls_module(create_ca=False, subject_alt_names=["web.lab", "10.0.0.9"], **other)
    assert code == 0, result


def test_clients_refuse_what_a_constrained_ca_signs_outside_its_names(tls_module, paths, tmp_path):
    """The reason for the constraints: even with the CA key, another site's certificate
    does not verify (made here by hand, past the module's own refusal)."""
    tls_module(ca_name_constraints=["registry.lab", "registry", "10.0.0.5"])
    ca_key = tls.load_private_key(Path(paths["ca_key_path"]).read_bytes(), "ca")
    key = ec.generate_private_key(ec.SECP256R1())
    forged = tls.build_leaf_certificate(
        ca_key, load_cert(paths["ca_cert_path"]), key, "bank.example", ["DNS:bank.example"], 30
    )
    forged_path = tmp_path / "forged.crt"
    forged_path.write_bytes(tls.cert_to_pem(forged))
    assert not _client_verifies(paths["ca_cert_path"], str(forged_path), "bank.example")


def test_an_unconstrained_ca_keeps_issuing_for_any_name(tls_module, paths, tmp_path):
    tls_module()
    other = dict(cert_path=str(tmp_path / "w.crt"), key_path=str(tmp_path / "w.key"))
    code, result = tls_module(create_ca=False, subject_alt_names=["anything.example"], **other)
    assert code == 0, result


def test_bad_constraints_are_refused(tls_module, paths):
    code, result = tls_module(ca_name_constraints=["not a domain"])
    assert code == 1
    assert "neither a DNS domain nor an IP network" in result["msg"]
    assert not os.path.exists(paths["ca_cert_path"])


def _contents(paths):
    """The operator's material as PEM text, and the files gone: nothing is on disk yet."""
    contents = {}
    for name in ("ca_cert", "cert", "key"):
        path = Path(paths[name + "_path"])
        contents[name + "_content"] = path.read_text()
        path.unlink()
    return contents


def test_verify_checks_text_before_anything_is_written(run_module, paths, operator_chain):
    contents = _contents(paths)
    args = dict(contents, state="verify", subject_alt_names=SANS, required_sans=["registry.lab"])
    code, result = run_module(registry_tls.main, args)
    assert code == 0, result
    assert result["chain_length"] == 2
    assert not any(Path(p).exists() for p in paths.values())


def test_verify_refuses_text_with_a_wrong_key(run_module, paths, operator_chain):
    contents = _contents(paths)
    contents["key_content"] = tls.key_to_pem(ec.generate_private_key(ec.SECP256R1())).decode()
    code, result = run_module(registry_tls.main, dict(contents, state="verify"))
    assert code == 1
    assert tls.KEY_MISMATCH in result["msg"]
    assert "PRIVATE KEY" not in json.dumps(result)


def test_verify_refuses_a_leaf_for_other_names(run_module, paths, operator_chain):
    contents = _contents(paths)
    args = dict(contents, state="verify", required_sans=["registry.example.com"])
    code, result = run_module(registry_tls.main, args)
    assert code == 1
    assert "the certificate is not for DNS:registry.example.com" in result["msg"]


def test_verify_takes_a_path_or_text_not_both(run_module, paths, operator_chain):
    contents = _contents(paths)
    args = dict(contents, state="verify", cert_path=paths["cert_path"])
    code, result = run_module(registry_tls.main, args)
    assert code == 1
    assert "mutually exclusive" in result["msg"]


# --- state=verify without a CA: a public CA's certificate, which clients already trust ------


def _without_ca(paths):
    contents = _contents(paths)
    del contents["ca_cert_content"]
    return contents


def test_verify_without_a_ca_checks_the_chain_within_itself(run_module, paths, operator_chain):
    args = dict(_without_ca(paths), state="verify", required_sans=["registry.lab"])
    code, result = run_module(registry_tls.main, args)
    assert code == 0, result
    assert result["chain_length"] == 2
    assert result["ca_fingerprint"] == ""
    assert not any(Path(p).exists() for p in paths.values())


def test_verify_without_a_ca_refuses_a_key_of_another_certificate(
    run_module, paths, operator_chain
):
    contents = _without_ca(paths)
    contents["key_content"] = tls.key_to_pem(ec.generate_private_key(ec.SECP256R1())).decode()
    code, result = run_module(registry_tls.main, dict(contents, state="verify"))
    assert code == 1
    assert tls.KEY_MISMATCH in result["msg"]
    assert "PRIVATE KEY" not in json.dumps(result)


def test_verify_without_a_ca_refuses_a_chain_out_of_order(run_module, paths, operator_chain):
    # The leaf followed by the root: the root did not sign it (the intermediate did).
    contents = _without_ca(paths)
    root, leaf = operator_chain["root"][1], operator_chain["leaf"][1]
    contents["cert_content"] = (tls.cert_to_pem(leaf) + tls.cert_to_pem(root)).decode()
    code, result = run_module(registry_tls.main, dict(contents, state="verify"))
    assert code == 1
    assert "is not signed by the next certificate in the file (Operator Root)" in result["msg"]
