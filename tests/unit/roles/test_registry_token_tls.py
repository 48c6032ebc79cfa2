"""The token service's TLS context (roles/registry_token/files/registry_token_tls.py).

A renewal replaces the key-and-chain file by a rename while gunicorn builds contexts for
new connections. These tests replace it as fast as they can and count the contexts that
could not be built, with a control that loads by path as gunicorn's default does.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from types import SimpleNamespace

from cryptography import x509

from ansible_collections.privreg.registry.tests.unit.roles.role_files import (
    cert_pem,
    key_pem,
    load_role_file,
    self_signed,
)


def _key_and_chain(name):
    """PEM of a fresh key followed by its self-signed certificate, and the certificate."""
    key, cert = self_signed(name, days=1)
    return key_pem(key) + cert_pem(cert), cert


def _conf(path):
    # The settings gunicorn hands the hook (its defaults for everything but the file).
    return SimpleNamespace(
        certfile=str(path), keyfile=str(path), ca_certs=None, cert_reqs=ssl.CERT_NONE, ciphers=None
    )


def _install(path, pem):
    """As registryctl install-tls does: a new file, then one rename."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(pem)
    os.replace(new, path)


def _served_serial(context):
    """The serial of the certificate a handshake with this server context presents."""
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        worker = threading.Thread(
            target=lambda: context.wrap_socket(server_end, server_side=True).close()
        )
        worker.start()
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        with client.wrap_socket(client_end) as tls:
            der = tls.getpeercert(binary_form=True)
        worker.join(5)
    return x509.load_der_x509_certificate(der).serial_number


def _contexts_failed_while_replacing(tmp_path, build, seconds, until_failed=False):
    """Build contexts for `seconds` (or until one fails) while another thread keeps
    replacing the file."""
    path = tmp_path / "tls.pem"
    pems = [_key_and_chain("a")[0], _key_and_chain("b")[0]]
    _install(path, pems[0])
    stop = threading.Event()

    def replace():
        turn = 0
        while not stop.is_set():
            turn += 1
            _install(path, pems[turn % 2])

    replacer = threading.Thread(target=replace)
    replacer.start()
    built = failed = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                build(path)
                built += 1
            except ssl.SSLError:
                failed += 1
                if until_failed:
                    break
    finally:
        stop.set()
        replacer.join()
    return built, failed


def test_a_replaced_file_is_served_from_the_next_connection_on(tmp_path):
    hook = load_role_file("registry_token", "registry_token_tls")
    path = tmp_path / "tls.pem"
    first_pem, first = _key_and_chain("first")
    _install(path, first_pem)
    context = hook.ssl_context(_conf(path), None)
    assert _served_serial(context) == first.serial_number
    # Unchanged file: the same context, nothing read again.
    assert hook.ssl_context(_conf(path), None) is context
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2

    second_pem, second = _key_and_chain("second")
    _install(path, second_pem)
    assert _served_serial(hook.ssl_context(_conf(path), None)) == second.serial_number


def test_no_context_mixes_two_files_while_they_are_replaced(tmp_path):
    hook = load_role_file("registry_token", "registry_token_tls")
    built, failed = _contexts_failed_while_replacing(
        tmp_path, lambda path: hook.ssl_context(_conf(path), None), seconds=2
    )
    assert built > 100
    assert failed == 0


def test_control_loading_by_path_mixes_them(tmp_path):
    # gunicorn's own loading: OpenSSL opens the path once for the chain, once for the key.
    def by_path(path):
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(path), str(path))

    built, failed = _contexts_failed_while_replacing(
        tmp_path, by_path, seconds=10, until_failed=True
    )
    assert failed > 0, "no mixed key and certificate in %d loads" % built
