"""The token service (roles/registry_token/files/registry_token.py) as a WSGI app.

Real keys, a real bcrypt htpasswd file and PyJWT to read what it answers.
"""

from __future__ import annotations

import base64
import http.server
import importlib.util
import io
import json
import os
import ssl
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from passlib.apache import HtpasswdFile
from passlib.hash import bcrypt

from ansible_collections.privreg.registry.plugins.module_utils import robots, token_acl
from ansible_collections.privreg.registry.tests.unit.roles.role_files import (
    cert_pem,
    key_pem,
    self_signed,
)

ROOT = Path(__file__).resolve().parents[3]
SERVICE_FILE = ROOT / "roles" / "registry_token" / "files" / "registry_token.py"


def _load_service_module():
    # On the host token_acl.py lies beside the service; here it is the collection's copy.
    sys.modules["token_acl"] = token_acl
    spec = importlib.util.spec_from_file_location("registry_token_under_test", SERVICE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


registry_token = _load_service_module()


def _signer(tmp_path, name):
    """A signing key and its self-signed certificate, written as NAME.key and NAME.crt."""
    key, cert = self_signed("test signer " + name)
    (tmp_path / (name + ".key")).write_bytes(key_pem(key))
    (tmp_path / (name + ".crt")).write_bytes(cert_pem(cert))
    return key, cert


@pytest.fixture
def setup(tmp_path):
    key, cert = _signer(tmp_path, "signing")
    users = HtpasswdFile(str(tmp_path / "htpasswd"), new=True, default_scheme="bcrypt")
    users.set_hash("alice", bcrypt.using(rounds=4).hash("alice-pw"))
    users.set_hash("carol", bcrypt.using(rounds=4).hash("carol-pw"))
    users.save()
    acl = {
        "groups": {"readers": ["carol"]},
        "rules": [
            {"account": "anonymous", "repository": "public/*", "actions": ["pull"]},
            {"group": "readers", "repository": "alice/*", "actions": ["pull"]},
            {"account": "*", "repository": "${account}/*", "actions": ["pull", "push"]},
        ],
    }
    (tmp_path / "acl.json").write_text(json.dumps(acl))
    config = {
        "issuer": "test-issuer",
        "service": "test-registry",
        "lifetime": 300,
        "signing_key": str(tmp_path / "signing.key"),
        "signing_certificate": str(tmp_path / "signing.crt"),
        "htpasswd": str(tmp_path / "htpasswd"),
        "acl": str(tmp_path / "acl.json"),
        "failure_limit": 3,
        "failure_window": 60,
        "bcrypt_cost": 4,
    }
    (tmp_path / "service.json").write_text(json.dumps(config))
    service = registry_token.TokenService(str(tmp_path / "service.json"))
    return {
        "app": registry_token.make_app(service),
        "service": service,
        "key": key,
        "cert": cert,
        "dir": tmp_path,
    }


def call(
    app,
    query="",
    user=None,
    password=None,
    method="GET",
    body=b"",
    address="192.0.2.1",
    path="/token",
    real_ip=None,
):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": address,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if real_ip is not None:
        environ["HTTP_X_REAL_IP"] = real_ip
    if user is not None:
        environ["HTTP_AUTHORIZATION"] = (
            "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        )
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    answer["body"] = json.loads(b"".join(app(environ, start_response)))
    return answer


def claims_of(setup, answer):
    token = answer["body"]["token"]
    header = jwt.get_unverified_header(token)
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    assert cert == setup["cert"]
    return jwt.decode(
        token,
        setup["key"].public_key(),
        algorithms=["ES256"],
        audience="test-registry",
        issuer="test-issuer",
    )


def test_a_user_gets_push_and_pull_on_their_own_repository(setup):
    answer = call(
        setup["app"],
        "service=test-registry&scope=repository:alice/app:pull,push",
        "alice",
        "alice-pw",
    )
    assert answer["status"] == 200
    claims = claims_of(setup, answer)
    assert claims["sub"] == "alice"
    assert claims["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}
    ]
    assert claims["exp"] - claims["nbf"] == 300
    assert claims["iat"] <= time.time() + 1
    assert answer["body"]["access_token"] == answer["body"]["token"]
    assert answer["headers"]["Cache-Control"] == "no-store"


def test_another_users_repository_is_granted_nothing(setup):
    answer = call(
        setup["app"],
        "service=test-registry&scope=repository:bob/app:pull,push",
        "alice",
        "alice-pw",
    )
    assert claims_of(setup, answer)["access"] == [
        {"type": "repository", "name": "bob/app", "actions": []}
    ]


def test_a_group_member_may_pull_but_not_push(setup):
    answer = call(
        setup["app"],
        "service=test-registry&scope=repository:alice/app:pull,push",
        "carol",
        "carol-pw",
    )
    assert claims_of(setup, answer)["access"][0]["actions"] == ["pull"]


def test_anonymous_gets_only_public_pulls(setup):
    query = (
        "service=test-registry&scope=repository:public/base:pull,push"
        "&scope=repository:alice/app:pull"
    )
    claims = claims_of(setup, call(setup["app"], query))
    assert claims["sub"] == ""
    assert claims["access"] == [
        {"type": "repository", "name": "public/base", "actions": ["pull"]},
        {"type": "repository", "name": "alice/app", "actions": []},
    ]


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "wrong"), ("nobody", "alice-pw"), ("", ""), ("anonymous", "x")]
)
def test_bad_credentials_are_refused(setup, user, password):
    answer = call(setup["app"], "service=test-registry", user, password)
    assert answer["status"] == 401
    assert "token" not in answer["body"]
    assert answer["headers"]["WWW-Authenticate"].startswith("Basic ")


def test_a_password_beyond_bcrypts_limit_is_refused_not_an_error(setup):
    assert call(setup["app"], "service=test-registry", "alice", "x" * 200)["status"] == 401


def test_failed_logins_are_limited_per_account_and_address(setup):
    for _attempt in range(3):
        assert call(setup["app"], "service=test-registry", "alice", "wrong")["status"] == 401
    # Now even the right password waits out the window from that address...
    blocked = call(setup["app"], "service=test-registry", "alice", "alice-pw")
    assert blocked["status"] == 429
    assert blocked["headers"]["Retry-After"] == "60"
    # ...while the same account from another address, and another account, still log in.
    assert (
        call(setup["app"], "service=test-registry", "alice", "alice-pw", address="192.0.2.2")[
            "status"
        ]
        == 200
    )
    assert call(setup["app"], "service=test-registry", "carol", "carol-pw")["status"] == 200


def _configure(setup, **settings):
    config = json.loads((setup["dir"] / "service.json").read_text())
    config.update(settings)
    (setup["dir"] / "service.json").write_text(json.dumps(config, indent=2))


def _token(setup, user, password, **where):
    return call(setup["app"], "service=test-registry", user, password, **where)["status"]


FRONT = "198.51.100.10"


def test_behind_a_trusted_proxy_failures_count_against_the_client_it_names(setup):
    """The lock-out through the front: its users all reach the service from the front's
    address, so keyed on that, anyone's wrong passwords for alice locked every front user
    out of alice. Keyed on the address the front names, only the guesser is."""
    _configure(setup, trusted_proxies=[FRONT + "/32"])
    for _attempt in range(3):
        assert _token(setup, "alice", "wrong", address=FRONT, real_ip="203.0.113.5") == 401
    assert _token(setup, "alice", "alice-pw", address=FRONT, real_ip="203.0.113.6") == 200
    assert _token(setup, "alice", "alice-pw", address=FRONT, real_ip="203.0.113.5") == 429
    # The front's own address is not the one held back.
    assert _token(setup, "alice", "alice-pw", address=FRONT) == 200


def test_an_untrusted_peer_cannot_name_another_address(setup):
    """A client that sends X-Real-IP itself (a new one with each guess) still meets the
    limit on its own address."""
    _configure(setup, trusted_proxies=[FRONT])
    for attempt in range(3):
        assert _token(setup, "alice", "wrong", real_ip="203.0.113.%d" % attempt) == 401
    assert _token(setup, "alice", "alice-pw", real_ip="203.0.113.99") == 429


def test_a_trusted_proxy_with_a_bad_header_counts_as_itself(setup):
    _configure(setup, trusted_proxies=[FRONT])
    for _attempt in range(3):
        assert _token(setup, "alice", "wrong", address=FRONT, real_ip="not-an-address") == 401
    assert _token(setup, "alice", "alice-pw", address=FRONT) == 429


def test_a_spray_of_user_names_meets_the_limit_per_address(setup):
    """A new name with every request never meets the per-account limit; the per-address
    one stops it, for that address only."""
    _configure(setup, address_failure_limit=5)
    for attempt in range(5):
        assert _token(setup, "sprayed-%d" % attempt, "guess") == 401
    assert _token(setup, "sprayed-5", "guess") == 429
    assert _token(setup, "carol", "carol-pw") == 429
    assert _token(setup, "carol", "carol-pw", address="192.0.2.2") == 200


def test_the_per_address_limit_is_never_below_the_per_account_one(setup):
    _configure(setup, address_failure_limit=1)
    for _attempt in range(2):
        assert _token(setup, "alice", "wrong") == 401
    assert _token(setup, "carol", "carol-pw") == 200


def test_password_checks_run_a_few_at_a_time_and_the_rest_are_turned_away(setup, monkeypatch):
    _configure(setup, password_checks=1)
    monkeypatch.setattr(registry_token, "PASSWORD_CHECK_WAIT_SECONDS", 0.05)
    service = setup["service"]
    assert service._password_checks.enter(1, 0)  # a check in progress
    try:
        busy = call(setup["app"], "service=test-registry", "alice", "alice-pw")
        assert busy["status"] == 429
        assert busy["headers"]["Retry-After"] == "1"
        # Turned away unchecked: not a failure of alice's.
        assert service._limiter._failures.get(("alice", "192.0.2.1"), []) == []
    finally:
        service._password_checks.leave()
    assert _token(setup, "alice", "alice-pw") == 200


def test_a_token_for_another_service_is_not_issued(setup):
    assert (
        call(setup["app"], "service=other&scope=repository:alice/app:pull", "alice", "alice-pw")[
            "status"
        ]
        == 400
    )


def test_the_oauth_password_grant_of_containerd_works(setup):
    body = (
        b"grant_type=password&username=alice&password=alice-pw&service=test-registry"
        b"&scope=repository%3Aalice%2Fapp%3Apull"
    )
    answer = call(setup["app"], method="POST", body=body)
    assert answer["status"] == 200
    assert claims_of(setup, answer)["access"][0]["actions"] == ["pull"]
    bad = b"grant_type=password&username=alice&password=nope&service=test-registry"
    assert call(setup["app"], method="POST", body=bad)["status"] == 401
    assert call(setup["app"], method="POST", body=b"grant_type=refresh_token")["status"] == 400


def test_user_and_rule_changes_are_picked_up_without_a_restart(setup):
    users = HtpasswdFile(str(setup["dir"] / "htpasswd"), default_scheme="bcrypt")
    users.set_hash("dave", bcrypt.using(rounds=4).hash("dave-pw"))
    users.save()
    acl = json.loads((setup["dir"] / "acl.json").read_text())
    acl["rules"].insert(0, {"account": "dave", "repository": "alice/*", "actions": ["pull"]})
    (setup["dir"] / "acl.json").write_text(json.dumps(acl) + "\n")
    # A newer stamp than the first read, even on filesystems with coarse times.
    for name in ("htpasswd", "acl.json"):
        os.utime(setup["dir"] / name, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    answer = call(
        setup["app"], "service=test-registry&scope=repository:alice/app:pull", "dave", "dave-pw"
    )
    assert claims_of(setup, answer)["access"][0]["actions"] == ["pull"]


def test_invalid_rules_are_refused_rather_than_half_applied(setup):
    (setup["dir"] / "acl.json").write_text(json.dumps({"groups": {}, "rules": [{"account": "x"}]}))
    with pytest.raises(ValueError, match="invalid access rules"):
        call(setup["app"], "service=test-registry", "alice", "alice-pw")


def test_a_new_signing_key_is_used_without_a_restart(setup):
    new_key, new_cert = _signer(setup["dir"], "2")
    config = json.loads((setup["dir"] / "service.json").read_text())
    config["signing_key"] = str(setup["dir"] / "2.key")
    config["signing_certificate"] = str(setup["dir"] / "2.crt")
    (setup["dir"] / "service.json").write_text(json.dumps(config, indent=1))
    answer = call(
        setup["app"], "service=test-registry&scope=repository:alice/app:pull", "alice", "alice-pw"
    )
    token = answer["body"]["token"]
    header = jwt.get_unverified_header(token)
    assert x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0])) == new_cert
    jwt.decode(token, new_key.public_key(), algorithms=["ES256"], audience="test-registry")


def test_a_key_replaced_under_the_same_id_signs_at_once(setup):
    """service.json unchanged, the key and certificate files replaced (a key made again
    under its id, or restored): the next token is the new key's, not the one in memory."""
    scope = "service=test-registry&scope=repository:alice/app:pull"
    before = call(setup["app"], scope, "alice", "alice-pw")["body"]["token"]
    key, cert = _signer(setup["dir"], "replacement")
    os.replace(setup["dir"] / "replacement.key", setup["dir"] / "signing.key")
    os.replace(setup["dir"] / "replacement.crt", setup["dir"] / "signing.crt")
    token = call(setup["app"], scope, "alice", "alice-pw")["body"]["token"]
    header = jwt.get_unverified_header(token)
    assert header["x5c"] != jwt.get_unverified_header(before)["x5c"]
    assert x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0])) == cert
    jwt.decode(token, key.public_key(), algorithms=["ES256"], audience="test-registry")


def test_a_removed_key_file_keeps_the_key_in_memory_until_the_next_key_is_named(setup):
    """A revocation removes the old key's files before service.json names the new key: the
    service goes on signing with the key it read (the registry still trusts it until its
    restart), then with the new one as soon as service.json names it."""
    scope = "service=test-registry&scope=repository:alice/app:pull"
    before = call(setup["app"], scope, "alice", "alice-pw")["body"]["token"]
    os.unlink(setup["dir"] / "signing.key")
    os.unlink(setup["dir"] / "signing.crt")
    answer = call(setup["app"], scope, "alice", "alice-pw")
    assert answer["status"] == 200
    assert jwt.get_unverified_header(answer["body"]["token"]) == jwt.get_unverified_header(before)
    new_key, new_cert = _signer(setup["dir"], "3")
    config = json.loads((setup["dir"] / "service.json").read_text())
    config["signing_key"] = str(setup["dir"] / "3.key")
    config["signing_certificate"] = str(setup["dir"] / "3.crt")
    (setup["dir"] / "service.json").write_text(json.dumps(config))
    token = call(setup["app"], scope, "alice", "alice-pw")["body"]["token"]
    header = jwt.get_unverified_header(token)
    assert x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0])) == new_cert
    jwt.decode(token, new_key.public_key(), algorithms=["ES256"], audience="test-registry")


def test_a_new_failure_limit_applies_without_a_restart(setup):
    config = json.loads((setup["dir"] / "service.json").read_text())
    config["failure_limit"] = 1
    (setup["dir"] / "service.json").write_text(json.dumps(config, indent=2))
    assert call(setup["app"], "service=test-registry", "alice", "wrong")["status"] == 401
    assert call(setup["app"], "service=test-registry", "alice", "alice-pw")["status"] == 429


def test_an_unknown_user_costs_a_check_at_the_current_cost(setup):
    service, path = setup["service"], setup["dir"] / "service.json"
    assert bcrypt.from_string(service.dummy_hash()).rounds == 4
    config = json.loads(path.read_text())
    config["bcrypt_cost"] = 5
    path.write_text(json.dumps(config))
    assert bcrypt.from_string(service.dummy_hash()).rounds == 5
    assert call(setup["app"], user="nobody", password="x")["status"] == 401


# --- /token/catalog: the registry's catalog, filtered by the rules --------------------------

CATALOG = ["alice/app", "alice/tools", "bob/app", "carol/app", "public/base"]


@pytest.fixture
def registry(setup, tmp_path):
    """A TLS server on loopback, for the name registry.test, that answers /v2/_catalog in
    pages of two (Link headers, as the registry does) to a token of the service's key with
    the catalog right; anything else gets 401. Its requests are recorded."""
    key, cert = _signer(tmp_path, "registry-tls")
    cert = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("registry.test")]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "registry-tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            try:
                claims = jwt.decode(
                    token,
                    setup["key"].public_key(),
                    algorithms=["ES256"],
                    audience="test-registry",
                    issuer="test-issuer",
                )
            except jwt.InvalidTokenError:
                claims = {}
            seen.append((self.path, claims))
            wanted = {"type": "registry", "name": "catalog", "actions": ["*"]}
            if wanted not in claims.get("access", []):
                self.send_response(401)
                self.end_headers()
                return
            last = self.path.partition("last=")[2].partition("&")[0]
            rest = [name for name in CATALOG if name > last] if last else CATALOG
            page = rest[:2]
            self.send_response(200)
            if rest[2:]:
                self.send_header("Link", '</v2/_catalog?last=%s&n=2>; rel="next"' % page[-1])
            body = json.dumps({"repositories": page}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "registry-tls.crt", tmp_path / "registry-tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = json.loads((tmp_path / "service.json").read_text())
    config["registry"] = {
        "address": "127.0.0.1",
        "port": server.server_address[1],
        "name": "registry.test",
        "ca": str(tmp_path / "registry-tls.crt"),
    }
    (tmp_path / "service.json").write_text(json.dumps(config))
    yield {"seen": seen, "config": config}
    server.shutdown()
    server.server_close()


def test_the_catalog_lists_only_what_the_caller_may_pull(setup, registry):
    alice = call(setup["app"], path="/token/catalog", user="alice", password="alice-pw")
    assert alice["status"] == 200, alice
    assert alice["body"]["repositories"] == ["alice/app", "alice/tools"]
    carol = call(setup["app"], path="/token/catalog", user="carol", password="carol-pw")
    assert carol["body"]["repositories"] == ["alice/app", "alice/tools", "carol/app"]
    # Without credentials nothing: the rules give anonymous no catalog right (its pull
    # rule on public/* lets it pull, not list).
    anonymous = call(setup["app"], path="/token/catalog")
    assert anonymous["status"] == 200
    assert anonymous["body"]["repositories"] == []
    # Every page was read (three of two names) once for all three callers, each with the
    # service's own catalog token.
    assert [seen[0] for seen in registry["seen"]] == [
        "/v2/_catalog?n=1000",
        "/v2/_catalog?last=alice/tools&n=2",
        "/v2/_catalog?last=carol/app&n=2",
    ]
    assert registry["seen"][0][1]["sub"] == "privreg-token-service"


def _rules(setup, rules):
    acl = json.loads((setup["dir"] / "acl.json").read_text())
    acl["rules"] = rules
    (setup["dir"] / "acl.json").write_text(json.dumps(acl))


def test_anonymous_lists_what_it_may_pull_only_with_the_catalog_right(setup, registry):
    _rules(
        setup,
        [
            {"account": "anonymous", "catalog": True},
            {"account": "anonymous", "repository": "public/*", "actions": ["pull"]},
        ],
    )
    anonymous = call(setup["app"], path="/token/catalog")
    assert anonymous["body"]["repositories"] == ["public/base"]


def test_a_caller_no_rule_lets_pull_is_answered_without_reading_the_catalog(setup, registry):
    """Anonymous callers (and users without a pull rule) cost the registry nothing: before,
    every request read every page of the catalog (list requests, on S3)."""
    _rules(setup, [{"account": "carol", "repository": "*", "actions": ["pull"]}])
    for _attempt in range(5):
        alice = call(setup["app"], path="/token/catalog", user="alice", password="alice-pw")
        assert alice["body"]["repositories"] == []
        assert call(setup["app"], path="/token/catalog")["body"]["repositories"] == []
    assert registry["seen"] == []


def test_the_catalog_is_read_once_at_a_time_and_again_when_old(setup, registry):
    now = [1000.0]
    service = registry_token.TokenService(
        str(setup["dir"] / "service.json"), monotonic=lambda: now[0]
    )
    app = registry_token.make_app(service)
    answers = []
    callers = [
        threading.Thread(
            target=lambda: answers.append(
                call(app, path="/token/catalog", user="alice", password="alice-pw")
            )
        )
        for _caller in range(8)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert [a["body"]["repositories"] for a in answers] == [["alice/app", "alice/tools"]] * 8
    assert len(registry["seen"]) == 3  # one read of three pages for eight callers
    now[0] += registry_token.CATALOG_CACHE_SECONDS - 1
    call(app, path="/token/catalog", user="alice", password="alice-pw")
    assert len(registry["seen"]) == 3
    now[0] += 2
    call(app, path="/token/catalog", user="alice", password="alice-pw")
    assert len(registry["seen"]) == 6


def test_the_catalog_refuses_bad_credentials(setup, registry):
    answer = call(setup["app"], path="/token/catalog", user="alice", password="wrong")
    assert answer["status"] == 401
    assert registry["seen"] == []  # the registry was not even asked


def test_the_catalog_checks_the_registrys_certificate(setup, registry, tmp_path):
    _signer(tmp_path, "stranger")
    config = dict(registry["config"], registry=dict(registry["config"]["registry"]))
    config["registry"]["ca"] = str(tmp_path / "stranger.crt")
    (tmp_path / "service.json").write_text(json.dumps(config))
    answer = call(setup["app"], path="/token/catalog", user="alice", password="alice-pw")
    assert answer["status"] == 502
    assert registry["seen"] == []


def test_the_catalog_is_a_502_when_the_registry_is_down(setup, registry, tmp_path):
    config = dict(registry["config"], registry=dict(registry["config"]["registry"], port=1))
    (tmp_path / "service.json").write_text(json.dumps(config))
    answer = call(setup["app"], path="/token/catalog", user="alice", password="alice-pw")
    assert answer["status"] == 502
    assert answer["body"]["errors"][0]["code"] == "UNAVAILABLE"


def test_other_paths_and_methods_are_refused(setup):
    assert call(setup["app"], path="/v2/")["status"] == 404
    assert call(setup["app"], path="/token/catalog", method="DELETE")["status"] == 405


# --- the company directory (token_ldap; against a real slapd: tests/functional) -------------


class _StandInDirectory:
    """What token_ldap.Directory answers, by the settings of ldap.json: its people (name ->
    (password, groups)), or down. Records who was asked."""

    asked: list = []

    def __init__(self, settings, bind_password):
        self.settings, self.bind_password = settings, bind_password

    def authenticate(self, username, password):
        _StandInDirectory.asked.append(username)
        if self.settings.get("down"):
            raise registry_token.token_ldap.DirectoryUnavailable("LDAPSocketOpenError: refused")
        person = self.settings["people"].get(username)
        if person is None or person[0] != password:
            return None
        return frozenset(person[1])


@pytest.fixture
def directory(setup, monkeypatch):
    monkeypatch.setattr(registry_token.token_ldap, "Directory", _StandInDirectory)
    _StandInDirectory.asked = []
    settings = {
        "bind_password": "search-pw",
        "people": {"dave": ["dave-pw", ["readers"]], "alice": ["directory-alice-pw", []]},
    }
    (setup["dir"] / "ldap.json").write_text(json.dumps(settings))
    _configure(setup, ldap=str(setup["dir"] / "ldap.json"))
    return setup["dir"] / "ldap.json"


def test_a_directory_user_gets_the_rights_of_the_groups_the_directory_gives(setup, directory):
    query = "service=test-registry&scope=repository:alice/app:pull,push"
    answer = call(setup["app"], query, "dave", "dave-pw")
    assert answer["status"] == 200
    assert claims_of(setup, answer)["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["pull"]}
    ]
    # The group is dave's only in this token: the rules' own groups are unchanged.
    assert setup["service"]._acl.get()["groups"] == {"readers": ["carol"]}


def test_a_local_account_wins_a_name_clash_and_the_directory_is_not_asked(setup, directory):
    assert _token(setup, "alice", "directory-alice-pw") == 401
    assert _token(setup, "alice", "alice-pw") == 200
    assert "alice" not in _StandInDirectory.asked


def test_a_directory_that_cannot_tell_answers_503_and_counts_no_failure(setup, directory, capsys):
    directory.write_text(json.dumps({"bind_password": "x", "down": True, "people": {}}))
    for _attempt in range(5):  # more than the failure limit (3)
        answer = call(setup["app"], "service=test-registry", "dave", "dave-pw")
        assert answer["status"] == 503
        assert answer["headers"]["Retry-After"] == "30"
    assert "directory: LDAPSocketOpenError: refused" in capsys.readouterr().err
    assert _token(setup, "alice", "alice-pw") == 200  # local accounts still work
    directory.write_text(json.dumps({"bind_password": "x", "people": {"dave": ["dave-pw", []]}}))
    assert _token(setup, "dave", "dave-pw") == 200  # read again; dave was never limited


def test_directory_settings_that_cannot_be_read_answer_503_not_500(setup, directory):
    directory.unlink()  # named by service.json, removed by a converge between its steps
    assert _token(setup, "dave", "dave-pw") == 503
    assert _token(setup, "alice", "alice-pw") == 200
    directory.write_text("{not json")
    assert _token(setup, "dave", "dave-pw") == 503


def test_without_a_directory_unknown_names_are_refused_without_asking_one(setup):
    assert _token(setup, "dave", "dave-pw") == 401
    assert setup["service"].directory() is None


# --- robot accounts (robots.json as module_utils.robots writes it) ---------------------------

ROBOT_SECRET = "the ci robot's secret value"


@pytest.fixture
def robots_file(setup):
    """robot$ci: push and pull on team/*, until a minute from now (the service's clock)."""

    def write(listed):
        planned = robots.plan({}, listed, "robot$", 4)[0]
        (setup["dir"] / "robots.json").write_text(robots.render(planned))

    ci = {
        "name": "ci",
        "secret": ROBOT_SECRET,
        "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60)),
        "access": [{"repository": "team/*", "actions": ["pull", "push"]}],
    }
    write([ci])
    _configure(setup, robots=str(setup["dir"] / "robots.json"), robot_prefix="robot$")
    return {"write": write, "ci": ci}


def _granted(setup, user, password, *scopes):
    query = "service=test-registry" + "".join("&scope=" + scope for scope in scopes)
    answer = call(setup["app"], query, user, password)
    assert answer["status"] == 200, answer
    return {item["name"]: item["actions"] for item in claims_of(setup, answer)["access"]}


def test_a_robot_gets_exactly_its_own_rules(setup, robots_file):
    access = _granted(
        setup,
        "robot$ci",
        ROBOT_SECRET,
        "repository:team/app:pull,push,delete",
        "repository:public/app:pull",  # anonymous may pull it: a rule of people
        "repository:robot$ci/app:pull,push",  # ${account}/* of people
    )
    assert access == {"team/app": ["pull", "push"], "public/app": [], "robot$ci/app": []}


def test_a_robots_wrong_secret_is_a_counted_failure(setup, robots_file):
    statuses = [_token(setup, "robot$ci", "wrong secret %d" % n) for n in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_a_robot_is_refused_from_its_expiry_without_a_restart(setup, robots_file, capsys):
    assert _token(setup, "robot$ci", ROBOT_SECRET) == 200
    expires = robots.expiry_seconds(robots_file["ci"]["expires"])
    setup["service"]._clock = lambda: expires  # the moment it expires
    assert _token(setup, "robot$ci", ROBOT_SECRET) == 401
    assert "login: robot robot$ci expired at %s" % robots_file["ci"]["expires"] in (
        capsys.readouterr().err
    )
    setup["service"]._clock = lambda: expires - 1
    assert _token(setup, "robot$ci", ROBOT_SECRET) == 200


def test_a_removed_robot_is_refused_at_its_next_sign_in(setup, robots_file):
    assert _token(setup, "robot$ci", ROBOT_SECRET) == 200
    robots_file["write"]([])
    assert _token(setup, "robot$ci", ROBOT_SECRET) == 401


def test_a_name_with_the_prefix_is_only_ever_a_robots(setup, robots_file):
    # A local user of that name (preflight refuses one) still cannot sign in.
    users = HtpasswdFile(str(setup["dir"] / "htpasswd"))
    users.set_hash("robot$ghost", bcrypt.using(rounds=4).hash("ghost-pw"))
    users.save()
    assert _token(setup, "robot$ghost", "ghost-pw") == 401
    assert _token(setup, "alice", "alice-pw") == 200


def test_an_unreadable_robots_file_refuses_robots_and_nobody_else(setup, robots_file, capsys):
    (setup["dir"] / "robots.json").write_text("{broken")
    assert _token(setup, "robot$ci", ROBOT_SECRET) == 401
    assert _token(setup, "alice", "alice-pw") == 200
    assert "robots: %s cannot be read" % (setup["dir"] / "robots.json") in capsys.readouterr().err


def test_a_robot_lists_only_what_its_rules_let_it_pull(setup, registry):
    planned = robots.plan(
        {},
        [
            {
                "name": "lister",
                "secret": ROBOT_SECRET,
                "expires": "never",
                "access": [{"repository": "alice/*", "actions": ["pull"]}],
            }
        ],
        "robot$",
        4,
    )[0]
    (setup["dir"] / "robots.json").write_text(robots.render(planned))
    _configure(setup, robots=str(setup["dir"] / "robots.json"), robot_prefix="robot$")
    answer = call(setup["app"], path="/token/catalog", user="robot$lister", password=ROBOT_SECRET)
    assert answer["status"] == 200, answer
    assert answer["body"]["repositories"] == ["alice/app", "alice/tools"]
