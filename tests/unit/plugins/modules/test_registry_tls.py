"""registry_tls: create, keep, and regenerate only for a reason."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

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
    _, first = tls_module()
    before = {name: Path(path).read_bytes() for name, path in paths.items()}
    _, second = tls_module()
    assert second["changed"] is False
    assert second["reasons"] == []
    assert second["fingerprint"] == first["fingerprint"]
    assert {name: Path(path).read_bytes() for name, path in paths.items()} == before


def test_check_mode_writes_nothing(tls_module, paths):
    _, result = tls_module(check_mode=True)
    assert result["changed"] is True
    assert result["reasons"] == ["ca_renewed", "missing"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_check_mode_reports_pending_san_change(tls_module, paths):
    tls_module()
    before = Path(paths["cert_path"]).read_bytes()
    _, result = tls_module(check_mode=True, subject_alt_names=SANS + ["reg2.lab"])
    assert result["changed"]
    assert result["reasons"] == ["sans_changed"]
    assert Path(paths["cert_path"]).read_bytes() == before


def test_new_san_reissues_certificate_and_keeps_keys_and_ca(tls_module, paths):
    _, first = tls_module()
    server_key, ca_pem = (
        public_key_bytes(paths["key_path"]),
        Path(paths["ca_cert_path"]).read_bytes(),
    )
    _, result = tls_module(subject_alt_names=SANS + ["reg2.lab"])
    assert result["changed"]
    assert result["reasons"] == ["sans_changed"]
    assert result["ca_changed"] is False
    assert "DNS:reg2.lab" in result["subject_alt_names"]
    assert result["fingerprint"] != first["fingerprint"]
    assert public_key_bytes(paths["key_path"]) == server_key
    assert Path(paths["ca_cert_path"]).read_bytes() == ca_pem


def test_san_order_and_case_do_not_matter(tls_module):
    tls_module()
    _, result = tls_module(subject_alt_names=["registry.lab.", "IP:10.0.0.5", "REGISTRY"])
    assert result["changed"] is False


def test_expiring_certificate_is_reissued(tls_module, paths):
    tls_module(valid_days=10)
    _, result = tls_module(valid_days=365)
    assert result["reasons"] == ["expiring"]
    assert (tls.not_after(load_cert(paths["cert_path"])) - tls.utcnow()).days >= 364


def test_threshold_decides_what_expiring_means(tls_module):
    tls_module(valid_days=10)
    _, result = tls_module(renew_before_days=5)
    assert result["changed"] is False


def test_key_that_does_not_match_is_detected(tls_module, paths):
    tls_module()
    other = ec.generate_private_key(ec.SECP256R1())
    with open(paths["key_path"], "wb") as handle:
        handle.write(tls.key_to_pem(other))
    _, result = tls_module()
    assert result["reasons"] == ["key_mismatch"]
    cert = load_cert(paths["cert_path"])
    assert tls.key_matches(other, cert)


def test_lost_ca_renews_ca_and_reissues_server_certificate(tls_module, paths):
    tls_module()
    os.unlink(paths["ca_key_path"])
    os.unlink(paths["ca_cert_path"])
    _, result = tls_module()
    assert result["ca_changed"] is True
    assert set(result["reasons"]) == {"ca_renewed", "not_issued_by_ca"}
    assert tls.issued_by(load_cert(paths["cert_path"]), load_cert(paths["ca_cert_path"]))


def test_expiring_ca_is_renewed(tls_module, paths):
    tls_module(ca_valid_days=20)
    _, result = tls_module()
    assert result["ca_changed"] is True
    assert "ca_renewed" in result["reasons"]
    assert (tls.not_after(load_cert(paths["ca_cert_path"])) - tls.utcnow()).days >= 3649


def test_certificate_from_another_ca_is_reissued(tls_module, paths, tmp_path):
    tls_module()
    other = dict(paths, ca_cert_path=str(tmp_path / "o.crt"), ca_key_path=str(tmp_path / "o.key"))
    tls_module(**other, force=True)
    _, result = tls_module()
    assert result["reasons"] == ["not_issued_by_ca"]


def test_force_reissues(tls_module):
    _, first = tls_module()
    _, result = tls_module(force=True)
    assert result["reasons"] == ["forced"]
    assert result["fingerprint"] != first["fingerprint"]


def test_loose_key_mode_is_tightened(tls_module, paths):
    tls_module()
    os.chmod(paths["key_path"], 0o644)
    _, result = tls_module()
    assert result["changed"] is True
    assert result["reasons"] == []
    assert stat.S_IMODE(os.stat(paths["key_path"]).st_mode) == 0o600


def test_diff_has_names_and_fingerprints_but_no_key_material(tls_module, paths):
    _, result = tls_module(diff=True)
    after = result["diff"]["after"]
    assert "DNS:registry.lab" in after
    assert result["fingerprint"] in after
    assert "PRIVATE KEY" not in str(result)
    assert result["diff"]["before"] == "ca: absent\nserver: absent\n"


def test_rsa_keys(tls_module, paths):
    _, result = tls_module(key_type="rsa", key_size=2048)
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
    assert "cert_path=" in result["msg"]


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
    _, result = tls_module(purpose="client", common_name="build01", **client)
    assert result["changed"]
    assert result["ca_changed"] is False
    cert = load_cert(client["cert_path"])
    assert tls.extended_key_usage(cert) == {"client"}
    assert tls.common_name(cert) == "build01"
    assert tls.issued_by(cert, load_cert(paths["ca_cert_path"]))
    assert Path(paths["ca_cert_path"]).read_bytes() == ca_pem
    assert stat.S_IMODE(os.stat(client["key_path"]).st_mode) == 0o600
    _, again = tls_module(purpose="client", common_name="build01", **client)
    assert again["changed"] is False


def test_client_certificate_without_a_ca_is_refused(tls_module, paths):
    code, result = tls_module(purpose="client", common_name="build01", subject_alt_names=[])
    assert code == 1
    assert "deploy the registry server first" in result["msg"]
    assert not any(os.path.exists(path) for path in paths.values())


def test_certificate_for_the_wrong_purpose_is_reissued(tls_module, paths):
    tls_module()
    # Reissue the server's certificate as a client certificate, then ask for a server one.
    tls_module(purpose="client", common_name="registry.lab", force=True)
    _, result = tls_module()
    assert "usage_changed" in result["reasons"]
    assert tls.extended_key_usage(load_cert(paths["cert_path"])) == {"server"}
