"""Token authentication with per-repository rules, with real tokens from the token service.

The client (Docker) logs in as alice through registry_client; the other identities get a
DOCKER_CONFIG of their own on the same host. Rules (molecule.yml): admins everything and
the catalog, anonymous and every user pull public/*, readers (carol) pull alice/*, every
user pull and push ${account}/*. Tests run in file order and share STATE; the load figures
go to artifacts/acl.json.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from conftest import (
    AFTER_ROTATION,
    ARTIFACTS,
    ISSUER,
    PASSWORDS,
    REALM,
    REGISTRY,
    SERVICE,
    TOKEN_LOAD,
    assert_token_load,
    docker_as,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from registry_helpers import converge, http, pull_load, push_unique_image, recap, test_host

TOKEN_UNIT = "registry-token"
STATE: dict = {}


def token_for(client, user, *scopes):
    """A token from the realm, as a client asks for it (basic credentials, or none)."""
    query = "service=%s" % SERVICE + "".join("&scope=%s" % scope for scope in scopes)
    if user == "anonymous":  # no credentials at all
        answer = http(client, REALM + "?" + query)
    else:
        answer = http(client, REALM + "?" + query, user, PASSWORDS[user])
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])["token"]


def with_token(client, token, path, method="GET"):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return http(client, "https://%s%s" % (REGISTRY, path), method=method, headers=headers)


def test_alice_pushes_her_own_repository_and_not_bobs(client):
    pushed = push_unique_image(client, REGISTRY + "/alice/app")
    STATE["alice"] = pushed
    client.check_output("docker tag %s %s/bob/app:from-alice", pushed["reference"], REGISTRY)
    denied = client.run("docker push %s/bob/app:from-alice", REGISTRY)
    assert denied.rc != 0
    assert "denied" in (denied.stdout + denied.stderr).lower()


def test_a_reader_pulls_alices_repository_and_cannot_push_to_it(client):
    reference = STATE["alice"]["reference"]
    client.check_output("docker rmi %s", reference)
    pulled = docker_as(client, "carol", "pull %s", reference)
    assert pulled.rc == 0, pulled.stderr
    assert STATE["alice"]["digest"] in pulled.stdout
    client.check_output("docker tag %s %s/alice/app:by-carol", reference, REGISTRY)
    pushed = docker_as(client, "carol", "push %s/alice/app:by-carol", REGISTRY)
    assert pushed.rc != 0
    assert "denied" in (pushed.stdout + pushed.stderr).lower()


def test_bob_may_not_even_pull_alices_repository(client):
    pulled = docker_as(client, "bob", "pull %s", STATE["alice"]["reference"])
    assert pulled.rc != 0
    assert "denied" in pulled.stderr.lower() or "unauthorized" in pulled.stderr.lower()


def test_podman_follows_the_token_challenge_as_a_reader(client):
    podman = test_host("podman-client")
    reference = STATE["alice"]["reference"]
    # Logged in as carol by registry_client, through the token service.
    podman.check_output("podman pull %s", reference)
    digest = podman.check_output("podman image inspect --format '{{.Digest}}' %s", reference)
    assert digest == STATE["alice"]["digest"]
    podman.check_output("podman tag %s %s/alice/app:by-podman", reference, REGISTRY)
    denied = podman.run("podman push %s/alice/app:by-podman", REGISTRY)
    assert denied.rc != 0
    assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower()
    own = "%s/carol/app:by-podman" % REGISTRY
    podman.check_output("podman tag %s %s", reference, own)
    podman.check_output("podman push %s", own)
    pulled = docker_as(client, "carol", "pull %s", own)
    assert pulled.rc == 0, pulled.stderr


def test_anonymous_pulls_only_what_a_public_rule_allows(client):
    # An admin publishes public/base; a client without any login pulls it, not alice/app.
    reference = "%s/public/base:%d" % (REGISTRY, time.time())
    STATE["public"] = reference
    client.check_output("docker tag %s %s", STATE["alice"]["reference"], reference)
    assert docker_as(client, "root-admin", "push %s", reference).rc == 0
    client.check_output("docker rmi %s", reference)
    public = docker_as(client, "anonymous", "pull %s", reference)
    assert public.rc == 0, public.stderr
    private = docker_as(client, "anonymous", "pull %s", STATE["alice"]["reference"])
    assert private.rc != 0
    # The same at the HTTP level: an anonymous token grants nothing on alice/app.
    token = token_for(client, "anonymous", "repository:alice/app:pull")
    assert jwt.decode(token, options={"verify_signature": False})["access"][0]["actions"] == []
    answer = with_token(client, token, "/v2/alice/app/manifests/%s" % STATE["alice"]["tag"])
    assert answer["status"] == 401, answer


CTR = "ctr --namespace default images %s --hosts-dir /etc/containerd/certs.d --user %s %s"


def test_containerd_uses_the_password_grant_and_gets_only_its_rights(server):
    """containerd's resolver tries the OAuth password grant (POST) before GET."""
    containerd = test_host("containerd-client")
    bob = "bob:" + PASSWORDS["bob"]
    public = STATE["public"]
    pulled = containerd.run(CTR, "pull", bob, public)
    assert pulled.rc == 0, pulled.stderr
    own = "%s/bob/from-containerd:1" % REGISTRY
    containerd.check_output("ctr --namespace default images tag %s %s", public, own)
    pushed = containerd.run(CTR, "push", bob, own)
    assert pushed.rc == 0, pushed.stderr
    other = "%s/alice/from-containerd:1" % REGISTRY
    containerd.check_output("ctr --namespace default images tag %s %s", public, other)
    denied = containerd.run(CTR, "push", bob, other)
    assert denied.rc != 0
    assert "insufficient_scope" in denied.stderr, denied.stderr
    # Only containerd POSTs to the realm in this scenario.
    journal = server.check_output("journalctl -u %s --no-pager -o cat", TOKEN_UNIT)
    assert "POST /token" in journal


def test_the_catalog_is_for_admins_only(client):
    alice = with_token(client, token_for(client, "alice", "registry:catalog:*"), "/v2/_catalog")
    assert alice["status"] == 401, alice
    admin_token = token_for(client, "root-admin", "registry:catalog:*")
    admin = with_token(client, admin_token, "/v2/_catalog")
    assert admin["status"] == 200, admin
    assert {"alice/app", "public/base"} <= set(json.loads(admin["body"])["repositories"])


def test_an_admin_deletes_a_tag_and_its_owner_may_not(client):
    doomed = push_unique_image(client, REGISTRY + "/alice/doomed")
    path = "/v2/alice/doomed/manifests/%s" % doomed["digest"]
    scope = "repository:alice/doomed:pull,push,delete"
    by_alice = with_token(client, token_for(client, "alice", scope), path, "DELETE")
    assert by_alice["status"] == 401, by_alice
    by_admin = with_token(client, token_for(client, "root-admin", scope), path, "DELETE")
    assert by_admin["status"] == 202, by_admin
    client.check_output("docker rmi %s", doomed["reference"])
    gone = client.run("docker pull %s", doomed["reference"])
    assert gone.rc != 0
    assert "not found" in gone.stderr.lower() or "unknown" in gone.stderr.lower()


def test_bad_credentials_get_no_token_and_repeated_failures_are_limited(client):
    wrong = http(client, REALM + "?service=" + SERVICE, "bob", "not-bobs-password")
    assert wrong["status"] == 401, wrong
    assert "token" not in wrong["body"]
    statuses = [http(client, REALM, "bob", "guess-%d" % n)["status"] for n in range(6)]
    # 5 failures are allowed per minute (the first wrong one above included), then 429.
    assert statuses[:4] == [401] * 4, statuses
    assert statuses[-1] == 429, statuses
    right = http(client, REALM + "?service=" + SERVICE, "bob", PASSWORDS["bob"])
    assert right["status"] == 429, right


def _signer_on_host(server, key_id):
    """A signing key and its certificate (as a token's x5c), read from the registry host."""
    key = serialization.load_pem_private_key(
        server.check_output("cat /opt/registry/token/keys/%s.key" % key_id).encode(),
        password=None,
    )
    cert = x509.load_pem_x509_certificate(
        server.check_output("cat /opt/registry/token/keys/%s.crt" % key_id).encode()
    )
    return key, [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


@pytest.fixture(scope="module")
def signing(server):
    """The real signing key and certificate, read from the registry host."""
    return _signer_on_host(server, "1")


def _claims(**changes):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": "forged-%d" % now,
        "access": [{"type": "repository", "name": "alice/app", "actions": ["pull"]}],
    }
    claims.update(changes)
    return claims


def _stranger(server):
    """A key and certificate the registry has never seen, with the real signer's name."""
    pem = server.check_output(
        "d=$(mktemp -d); openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        " -keyout $d/key -out $d/crt -days 1 -subj %s 2>/dev/null; cat $d/key $d/crt; rm -rf $d",
        "/CN=%s signing key" % ISSUER,
    ).encode()
    key = serialization.load_pem_private_key(pem, password=None)
    cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE") :])
    return key, [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def _sign(claims, key, x5c):
    """A token made by hand: the claims signed with key, its certificate in the header."""
    return jwt.encode(claims, key, algorithm="ES256", headers={"x5c": x5c})


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_registry_refuses_hand_made_tokens(server, client, signing):
    key, x5c = signing
    path = "/v2/alice/app/manifests/%s" % STATE["alice"]["tag"]

    def sign(claims, with_key=key, with_x5c=x5c):
        return _sign(claims, with_key, with_x5c)

    # The control: made the same way with the real key and the right claims, it works, so
    # each refusal below is for the one thing changed.
    assert with_token(client, sign(_claims()), path)["status"] == 200
    real = token_for(client, "alice", "repository:alice/app:pull")
    header, payload, signature = real.split(".")
    edited = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited["access"] = [{"type": "repository", "name": "bob/app", "actions": ["pull", "push"]}]
    forged = {
        "expired": sign(_claims(exp=int(time.time()) - 600, nbf=int(time.time()) - 900)),
        "wrong issuer": sign(_claims(iss="someone-else")),
        "wrong audience": sign(_claims(aud="another-registry")),
        "alg none": "%s.%s."
        % (_b64(b'{"alg":"none","typ":"JWT"}'), _b64(json.dumps(_claims()).encode())),
        "unknown key": sign(_claims(), *_stranger(server)),
        "access list edited": "%s.%s.%s" % (header, _b64(json.dumps(edited).encode()), signature),
    }
    statuses = {}
    for what, token in forged.items():
        target = path if what != "access list edited" else "/v2/bob/app/tags/list"
        statuses[what] = with_token(client, token, target)["status"]
    STATE["refused_tokens"] = statuses
    assert statuses == {what: 401 for what in forged}, statuses


def test_rules_and_users_change_without_a_restart(server, client):
    pid = server.check_output("systemctl show -p MainPID --value %s", TOKEN_UNIT)
    started = server.check_output("docker inspect -f '{{.State.StartedAt}}' registry")
    users = [{"name": name, "password": password} for name, password in PASSWORDS.items()]
    users.append({"name": "dave", "password": "molecule-dave-pw"})
    rules = [
        {"account": "dave", "repository": "alice/*", "actions": ["pull"]},
        {"group": "admins", "repository": "*", "actions": ["*"]},
        {"account": "*", "repository": "${account}/*", "actions": ["pull", "push"]},
    ]
    extra = json.dumps({"registry_server_users": users, "registry_token_acl": rules})
    rc, out = converge("--limit", "registry", "-e", extra)
    assert rc == 0, out[-3000:]
    assert recap(out)["registry"]["changed"] == 2, out[-3000:]  # htpasswd and acl.json
    PASSWORDS["dave"] = "molecule-dave-pw"
    token = token_for(client, "dave", "repository:alice/app:pull")
    answer = with_token(client, token, "/v2/alice/app/manifests/%s" % STATE["alice"]["tag"])
    assert answer["status"] == 200, answer
    assert server.check_output("systemctl show -p MainPID --value %s", TOKEN_UNIT) == pid
    assert server.check_output("docker inspect -f '{{.State.StartedAt}}' registry") == started


def test_a_rule_the_service_could_not_read_is_refused_and_changes_nothing(server):
    state = "sha256sum /opt/registry/token/*.json /opt/registry/config/config.yml"
    before = server.check_output(state)
    extra = json.dumps({"registry_token_acl": [{"account": "alice", "repository": "Alice/*"}]})
    rc, out = converge("--limit", "registry", "-e", extra)
    assert rc != 0
    for fragment in ("registry_token_acl[0]", "lower-case", "actions must be"):
        assert fragment in out
    assert recap(out)["registry"]["changed"] == 0
    assert server.check_output(state) == before


def test_the_token_service_logs_no_password_and_no_token(server, client):
    token = token_for(client, "alice", "repository:alice/app:pull")
    journal = server.check_output("journalctl -u %s --no-pager -o cat", TOKEN_UNIT)
    assert "GET /token" in journal  # the access log is there...
    for secret in [*PASSWORDS.values(), token, token.split(".")[2]]:
        assert secret not in journal  # ...without secrets
    key_mode = server.check_output("stat -c '%a %U' /opt/registry/token/keys/1.key")
    assert key_mode == "600 registry-token"
    assert server.check_output("ps -o user= -C gunicorn | sort -u") == "registry-token"


_BCRYPT_FLOOR = r"""
import time
from passlib.hash import bcrypt
hashed = bcrypt.using(rounds=10).hash("x")
started = time.monotonic()
for _ in range(20):
    bcrypt.verify("x", hashed)
print((time.monotonic() - started) / 20 * 1000)
"""


def test_token_service_load_with_20_concurrent_clients(server, client):
    query = "?service=%s&scope=repository:alice/app:pull" % SERVICE
    out = client.check_output(
        "python3 -c %s %s %s %s 20 10", TOKEN_LOAD, REALM + query, "alice", PASSWORDS["alice"]
    )
    load = json.loads(out)
    bcrypt_ms = float(server.check_output("python3 -c %s", _BCRYPT_FLOOR))
    cores = int(server.check_output("nproc"))
    report = {
        "load": load,
        "tokens_per_second": round(load["tokens"] / load["seconds"], 1),
        "bcrypt_cost_10_verify_ms": round(bcrypt_ms, 1),
        "bcrypt_ceiling_tokens_per_second": round(cores * 1000 / bcrypt_ms, 1),
        "cores": cores,
        "refused_tokens": STATE.get("refused_tokens"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "acl.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    assert_token_load(load)


def _bundle_subjects(server):
    return server.check_output(
        "openssl crl2pkcs7 -nocrl -certfile /opt/registry/certs/token-bundle.crt"
        " | openssl pkcs7 -print_certs -noout | grep '^subject'"
    ).splitlines()


def _token_service_pid(server):
    return server.check_output("systemctl show --property MainPID --value registry-token")


def test_a_rotation_fails_no_pull_and_a_revoked_key_is_refused_at_once(server, client, signing):
    """Last: it rotates to key 2 under a token-and-pull loop (the same converge changes the
    token service's command line, which restarts it with SYNs held: no token request may
    fail either); the next converge, once key 1's tokens have expired, rotates to key 3 and
    revokes key 2, whose tokens are still within their lifetime: key 1 leaves for its age,
    key 2 at once, and the registry refuses a token key 2 signs."""
    old_key, old_x5c = signing
    assert len(_bundle_subjects(server)) == 1
    token_service_pid = _token_service_pid(server)
    changes = "registry_token_signing_key_id=2 registry_token_threads=9"
    path = "/v2/alice/app/manifests/%s" % STATE["alice"]["digest"]
    with pull_load(
        "client-a",
        "https://" + REGISTRY,
        "alice",
        PASSWORDS["alice"],
        "alice/app",
        STATE["alice"]["digest"],
        realm=REALM + "?service=" + SERVICE,
    ) as load:
        time.sleep(3)
        rc, out = converge("--limit", "registry", "-e", changes)
        rotated_at = time.monotonic()
        assert rc == 0, out[-3000:]
        # Both keys trusted; the new one signs; a token of the old key is still good.
        subjects = _bundle_subjects(server)
        assert len(subjects) == 2, subjects
        after = token_for(client, "alice", "repository:alice/app:pull")
        assert jwt.get_unverified_header(after)["x5c"] != old_x5c
        # A token of the old key, still within its lifetime: minted now rather than taken
        # before the converge, which on a loaded machine can outlast the 300 s lifetime.
        before = _sign(_claims(exp=int(time.time()) + 60), old_key, old_x5c)
        assert with_token(client, before, path)["status"] == 200
        time.sleep(3)
    STATE["rotation"] = {k: load[k] for k in ("requests", "failed", "failures", "signers")}
    assert "Restart the token service for its changed unit" in out
    assert _token_service_pid(server) != token_service_pid
    assert load["failed"] == 0, load
    assert load["requests"] >= 20, load
    assert load["signers"] == 2, load  # the loop saw tokens of both keys
    # Key 2's tokens are good before the revocation (the control for the 401 below).
    key_2, x5c_2 = _signer_on_host(server, "2")
    by_key_2 = _sign(_claims(exp=int(time.time()) + 60), key_2, x5c_2)
    assert with_token(client, by_key_2, path)["status"] == 200
    # The old key leaves at the first converge after its tokens can no longer be valid;
    # a revoked key leaves at once.
    time.sleep(max(0.0, 125 - (time.monotonic() - rotated_at)))
    rc, out = converge("--limit", "registry", "-e", json.dumps(AFTER_ROTATION))
    assert rc == 0, out[-3000:]
    assert len(_bundle_subjects(server)) == 1
    for gone in ("1.key", "1.crt", "2.key", "2.crt"):
        assert not server.file("/opt/registry/token/keys/" + gone).exists, gone
    # Tokens signed now, every claim right: key 1's (expired key) and key 2's (revoked,
    # its tokens still within their lifetime) are refused; key 3 signs what is accepted.
    late = _sign(_claims(exp=int(time.time()) + 60), old_key, old_x5c)
    assert with_token(client, late, path)["status"] == 401
    revoked = _sign(_claims(exp=int(time.time()) + 60), key_2, x5c_2)
    assert with_token(client, revoked, path)["status"] == 401
    assert with_token(client, by_key_2, path)["status"] == 401
    current = token_for(client, "alice", "repository:alice/app:pull")
    assert jwt.get_unverified_header(current)["x5c"] not in (old_x5c, x5c_2)
    assert with_token(client, current, path)["status"] == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "acl.json"
    data = json.loads(report.read_text()) if report.exists() else {}
    data["rotation"] = STATE["rotation"]
    report.write_text(json.dumps(data, indent=2) + "\n")
