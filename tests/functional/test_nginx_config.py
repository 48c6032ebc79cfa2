"""registry_web's nginx.conf, rendered by Ansible for every UI mode, passes nginx -t.

The Molecule scenario `web` runs the built-in UI; this also covers the Joxit path it
does not run, and plain-HTTP registries, with the nginx image the lab builds.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rendering import render_template

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "registry_web"
IMAGE = "privreg-test/nginx:debian"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A self-signed certificate standing in for the front's and the registry's CA."""
    directory = tmp_path_factory.mktemp("certs")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "web.crt").write_bytes(pem)
    (directory / "registry-ca.crt").write_bytes(pem)
    (directory / "web.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory


def render(tmp_path, **overrides):
    """nginx.conf as the role renders it, for a registry at registry.example:5000."""
    settings = {
        "registry_web_registry_host": "registry.example",
        "registry_web_registry_url": "https://registry.example:5000",
        "registry_web_registry_name": "registry.example:5000",
        "registry_web_auth_enabled": True,
        **overrides,
    }
    (tmp_path / "conf").mkdir()
    return render_template(ROLE, "nginx.conf.j2", tmp_path / "conf" / "nginx.conf", settings)


def nginx_test(conf, certs):
    return subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none",
            "--add-host", "registry.example:127.0.0.1",
            "--volume", "%s:/etc/nginx/privreg:ro" % conf.parent,
            "--volume", "%s:/etc/nginx/certs:ro" % certs,
            "--entrypoint", "nginx", IMAGE, "-t", "-c", "/etc/nginx/privreg/nginx.conf",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    [
        {"registry_web_ui": "builtin", "registry_web_read_only": True},
        {"registry_web_ui": "builtin", "registry_web_read_only": False},
        {"registry_web_ui": "joxit", "registry_web_read_only": True},
        {"registry_web_ui": "joxit", "registry_web_read_only": False},
        {"registry_web_registry_url": "http://registry.example:5000"},
        {"registry_web_registry_url": "https://registry.example"},
    ],
    ids=["builtin-ro", "builtin-rw", "joxit-ro", "joxit-rw", "plain-http", "https-443"],
)
def test_every_mode_passes_nginx_t(tmp_path, certs, overrides):
    conf = render(tmp_path, **overrides)
    text = conf.read_text()
    result = nginx_test(conf, certs)
    assert result.returncode == 0, result.stderr
    read_only = overrides.get("registry_web_read_only", True)
    assert ("return 405;" in text) == read_only
    assert ("proxy_ssl_verify on;" in text) == overrides.get(
        "registry_web_registry_url", "https://"
    ).startswith("https://")
    if overrides.get("registry_web_registry_url") == "https://registry.example":
        assert "server registry.example:443;" in text
    # Hardened TLS and headers in every mode: AEAD with forward secrecy for TLS 1.2, HSTS on
    # every location (add_header in a location replaces the server's), no client-sent
    # Forwarded header passed on.
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    ciphers = text.split("ssl_ciphers ")[1].split(";")[0].split(":")
    assert ciphers
    assert all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers)
    assert text.count("location ") == text.count(
        'add_header Strict-Transport-Security "max-age=63072000" always;'
    )
    assert 'proxy_set_header Forwarded "";' in text
    assert "proxy_set_header X-Forwarded-Host $http_host;" in text
    assert text.count("Content-Security-Policy") == 1


def test_a_broken_configuration_fails_nginx_t(tmp_path, certs):
    # The negative control: the same check the role's validate step runs does catch errors.
    conf = render(tmp_path)
    conf.write_text(conf.read_text().replace("client_max_body_size 0;", "client_max_body_size;"))
    result = nginx_test(conf, certs)
    assert result.returncode != 0
    assert "client_max_body_size" in result.stderr
