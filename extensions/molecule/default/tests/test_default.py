"""The registry as its users rely on it: an image pushed from one host over TLS, by the
registry's host name, pulls on another with the same digest; what must fail, fails."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest
import yaml
from registry_helpers import (
    SERVER_STATE,
    converge,
    docker_login_works,
    http,
    leaked,
    line_independent,
    pull_and_check_digest,
    push_unique_image,
    recap,
)

BCRYPT_LINE = re.compile(r"^[^:\s]+:\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


@pytest.fixture(scope="module")
def pushed(client_a, registry):
    """client-a pushes a fresh image by the registry's host name."""
    return push_unique_image(client_a, registry + "/smoke/hello")


def test_image_pushed_on_one_host_pulls_on_another_with_same_digest(client_b, pushed):
    pull_and_check_digest(client_b, pushed)


def test_registry_api_lists_the_image(client_a, registry, credentials, pushed):
    user, password = credentials("client-a")
    catalog = http(client_a, "https://%s/v2/_catalog" % registry, user, password)
    assert catalog["status"] == 200
    assert "smoke/hello" in json.loads(catalog["body"])["repositories"]
    tags = http(client_a, "https://%s/v2/smoke/hello/tags/list" % registry, user, password)
    assert pushed["tag"] in json.loads(tags["body"])["tags"]
    manifest_url = "https://%s/v2/smoke/hello/manifests/%s" % (registry, pushed["tag"])
    manifest = http(client_a, manifest_url, user, password, "HEAD")
    assert manifest["status"] == 200
    assert manifest["headers"]["Docker-Content-Digest"] == pushed["digest"]


def test_anonymous_catalog_is_refused(client_a, registry):
    answer = http(client_a, "https://%s/v2/_catalog" % registry)
    assert answer["status"] == 401
    assert "basic" in answer["headers"].get("Www-Authenticate", "").lower()


def test_wrong_password_fails_login(client_b, registry, credentials):
    user = credentials("client-b")[0]
    result = docker_login_works(client_b, registry, user, "wrong-password")
    assert result.rc != 0
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower()


def test_right_password_logs_in(client_b, registry, credentials):
    # The positive twin of the test above: the same command with the real password works.
    user, password = credentials("client-b")
    result = docker_login_works(client_b, registry, user, password)
    assert result.rc == 0, result.stderr


def test_host_without_the_ca_gets_a_certificate_error(outsider, client_a, registry):
    untrusted = http(outsider, "https://%s/v2/" % registry)
    assert untrusted["status"] is None
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]
    # Same request from an onboarded host: TLS succeeds and auth is what stops it.
    assert http(client_a, "https://%s/v2/" % registry)["status"] == 401


def test_debug_port_is_private(server, client_a):
    health = http(server, "http://127.0.0.1:5001/debug/health")
    assert health["status"] == 200
    assert json.loads(health["body"]) == {}
    metrics = http(server, "http://127.0.0.1:5001/metrics")
    assert metrics["status"] == 200
    assert "registry_" in metrics["body"]
    from_client = http(client_a, "http://registry:5001/debug/health")
    assert from_client["status"] is None, from_client


def test_secrets_are_not_world_readable(server):
    for path in (
        "/opt/registry/certs/server.key",
        "/opt/registry-pki/ca.key",
        "/opt/registry/security/htpasswd",
        "/opt/registry/security/http_secret",
        "/opt/registry/security/registry.env",
        "/opt/registry/config/config.yml",
    ):
        f = server.file(path)
        assert f.exists, path
        assert f.user == "root", path
        assert f.mode & 0o077 == 0, "%s has mode %o" % (path, f.mode)
    assert server.file("/opt/registry/security").mode == 0o700


def test_htpasswd_holds_only_bcrypt_entries(server):
    lines = server.file("/opt/registry/security/htpasswd").content_string.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["puller", "pusher"]
    assert all(BCRYPT_LINE.match(line) for line in lines), lines


def test_config_names_exactly_one_storage_driver(server):
    config = yaml.safe_load(server.file("/opt/registry/config/config.yml").content_string)
    drivers = set(config["storage"]) - {"delete", "redirect", "cache", "maintenance"}
    assert drivers == {"filesystem"}
    assert config["http"]["tls"]["minimumtls"] == "tls1.2"
    assert config["http"]["headers"]["X-Content-Type-Options"] == ["nosniff"]
    # Secrets live in the environment file, so config.yml diffs never show them.
    assert "secret" not in config["http"]
    env = server.file("/opt/registry/security/registry.env").content_string
    quoted = re.search(r"^REGISTRY_HTTP_SECRET='(\S+)'$", env, re.MULTILINE).group(1)
    # The registry parses the value as YAML: it is a double-quoted string.
    secret = yaml.safe_load(quoted)
    assert quoted.startswith('"')
    assert len(secret) >= 32
    running = server.check_output("docker inspect -f '{{json .Config.Env}}' registry")
    assert "REGISTRY_HTTP_SECRET=" + quoted in json.loads(running)


def test_the_ca_may_only_vouch_for_the_registry_names(server):
    """A CA in every client's trust store, limited to the registry's names and networks."""
    out = server.check_output(
        'python3 -c "from cryptography import x509; '
        "c = x509.load_pem_x509_certificate(open('/opt/registry/certs/ca.crt','rb').read()); "
        "n = c.extensions.get_extension_for_class(x509.NameConstraints); "
        'print(n.critical, [str(s.value) for s in n.value.permitted_subtrees])"'
    )
    critical, subtrees = out.split(" ", 1)
    assert critical == "True"
    # The registry's own name (single label: itself) and its network.
    assert "'registry'" in subtrees
    assert "/" in subtrees  # a network such as 172.18.0.0/16


def test_certificate_names_the_host_clients_use(server):
    sans = server.check_output(
        'python3 -c "from cryptography import x509; '
        "c = x509.load_pem_x509_certificate(open('/opt/registry/certs/server.crt','rb').read()); "
        'print(c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)"'
    )
    assert "value='registry'" in sans


@line_independent  # the idempotence step checks the template on both lines
def test_check_mode_on_converged_hosts_reports_no_change():
    rc, output = converge("--check", "--diff")
    assert rc == 0, output
    hosts = recap(output)
    assert set(hosts) >= {"registry", "client-a", "client-b"}
    assert all(counters["changed"] == 0 for counters in hosts.values()), hosts


# $ and # are what compose's env-file and shell parsing trip over; quotes, spaces and
# non-ASCII what hand-made quoting gets wrong.
AWKWARD_PASSWORD = "pa$$ #1 'single' \"double\" ünïcødé $HOME"


def secret_values(server):
    """Every secret the registry host holds that a log could leak."""
    env = server.file("/opt/registry/security/registry.env").content_string
    secrets = [
        yaml.safe_load(value)
        for value in re.findall(r"^REGISTRY_[A-Z_]+='(.+)'$", env, re.MULTILINE)
    ]
    hashes = [
        line.split(":", 1)[1]
        for line in server.file("/opt/registry/security/htpasswd").content_string.splitlines()
    ]
    keys = []
    for path in ("/opt/registry/certs/server.key", "/opt/registry-pki/ca.key"):
        # A line from the middle of the key: enough to recognise it anywhere.
        keys.append(server.file(path).content_string.splitlines()[2])
    return secrets + hashes + keys


def test_a_user_change_logs_no_secret_even_with_vvv_and_diff(server, client_b, registry):
    """htpasswd is read at start only: a user added by the role must work right away, with
    a password full of awkward characters, and no secret may reach the output."""
    users = [
        {"name": "pusher", "password": "molecule-pusher-pw"},
        {"name": "puller", "password": "molecule-puller-pw"},
        {"name": "late", "password": AWKWARD_PASSWORD},
    ]
    started = server.check_output("docker inspect -f '{{.State.StartedAt}}' registry")
    rc, output = converge("-vvv", "--diff", "-e", json.dumps({"registry_server_users": users}))
    assert rc == 0, output[-3000:]
    assert server.check_output("docker inspect -f '{{.State.StartedAt}}' registry") != started
    login = docker_login_works(client_b, registry, "late", AWKWARD_PASSWORD)
    assert login.rc == 0, login.stderr
    # Every rendering (raw, YAML-quoted, JSON-escaped, shell-quoted): the awkward password
    # prints as 'pu$her ''x''...' in YAML, which a search for the raw value misses.
    secrets = secret_values(server) + [AWKWARD_PASSWORD, "molecule-pusher-pw", "molecule-puller-pw"]
    found = leaked(secrets, output)
    assert found == [], "secrets in the -vvv --diff output: %d" % len(found)
    assert len(output) > 100_000  # -vvv really was on
    # 'late' stays for the next test, whose users leave it out: exclusive removes it there.


# What a run had done when it died: htpasswd written as the role writes it, no restart yet.
CUT_OFF_RUN = """
- name: A run cut off after it wrote htpasswd, before its restart handler
  hosts: registry
  gather_facts: false
  tasks:
    - name: Keep the htpasswd users (bcrypt), as the role does
      privreg.registry.registry_htpasswd:
        path: /opt/registry/security/htpasswd
        users: %s
        exclusive: true
        owner: root
        group: root
        mode: "0600"
"""


def test_the_restart_a_cut_off_run_owed_is_made_by_the_next_run(
    server, client_b, registry, tmp_path
):
    """The next run finds htpasswd as it wants it, so nothing of it changes; the registry,
    which read the file before it was written, must be restarted all the same. The last
    test's user 'late' is not in this test's list: exclusive removes it."""
    users = [
        {"name": "pusher", "password": "molecule-pusher-pw"},
        {"name": "puller", "password": "molecule-puller-pw"},
        {"name": "cutoff", "password": "molecule-cutoff-pw"},
    ]
    play = tmp_path / "cut_off_run.yml"
    play.write_text(CUT_OFF_RUN % json.dumps(users))
    started = server.check_output("docker inspect -f '{{.State.StartedAt}}' registry")
    rc, output = converge(playbook=str(play))
    assert rc == 0, output[-3000:]
    # The registry still serves the users it read at start.
    assert docker_login_works(client_b, registry, "cutoff", "molecule-cutoff-pw").rc != 0
    # A run cut off leaves its lease too: a converge from this controller whose
    # ansible-playbook is gone (a process that has exited). The next run takes it over at
    # once (no wait allowed) instead of waiting out its hour.
    gone = subprocess.Popen(["true"])  # noqa: S607 (a pid that is no longer alive)
    gone.wait()
    lease = server.check_output(
        "registryctl lock --holder converge --run rcutoff --controller %s --ttl 3600 --wait 0",
        "%s:%d" % (socket.gethostname(), gone.pid),
    )
    assert json.loads(lease.splitlines()[-1])["locked"] is True
    rc, output = converge(
        "--limit",
        "registry",
        "-e",
        json.dumps({"registry_server_users": users, "registry_maintenance_converge_lock_wait": 0}),
    )
    assert rc == 0, output[-3000:]
    assert lock_status(server) is None  # taken over, then given back
    assert server.check_output("docker inspect -f '{{.State.StartedAt}}' registry") != started
    login = docker_login_works(client_b, registry, "cutoff", "molecule-cutoff-pw")
    assert login.rc == 0, login.stderr
    assert docker_login_works(client_b, registry, "late", AWKWARD_PASSWORD).rc != 0
    # Back to the scenario's users.
    rc, output = converge("--limit", "registry")
    assert rc == 0, output[-3000:]
    htpasswd = server.file("/opt/registry/security/htpasswd").content_string
    assert "cutoff:" not in htpasswd
    assert "late:" not in htpasswd


def lock_status(server):
    return json.loads(server.check_output("registryctl status").splitlines()[-1])["lock"]


def test_a_converge_waits_for_another_converge_and_leaves_its_lease(server):
    """A converge running from another machine holds the lock: this one is refused (no
    wait allowed) before changing anything, names that run, and its own unlock leaves the
    other run's lease alone; the operator's unlock by run frees it."""
    server.check_output(
        "registryctl lock --holder converge --run rother --controller elsewhere.example:4242"
        " --ttl 600 --wait 0"
    )
    try:
        rc, output = converge(
            "--limit", "registry", "-e", "registry_maintenance_converge_lock_wait=0"
        )
        assert rc != 0
        assert "the lock is held by converge (since " in output
        assert "run rother from elsewhere.example:4242" in output
        assert "registryctl unlock --holder converge --run ID" in output
        assert recap(output)["registry"]["changed"] == 0
        assert lock_status(server)["run"] == "rother"
    finally:
        server.check_output("registryctl unlock --holder converge --run rother")
    assert lock_status(server) is None


@line_independent  # the client's side only
def test_one_more_client_is_onboarded_with_limit(server, outsider, pushed, tmp_path):
    """--limit newhost onboards it without touching the server; then it pulls."""
    extra = tmp_path / "newhost.yml"
    extra.write_text(
        "registry_clients:\n  hosts:\n    outsider:\n"
        "      registry_client_username: puller\n"
        "      registry_client_password: molecule-puller-pw\n"
    )
    before = server.check_output(SERVER_STATE)
    rc, output = converge("--limit", "outsider", inventories=[extra])
    assert rc == 0, output
    assert set(recap(output)) == {"outsider"}
    assert server.check_output(SERVER_STATE) == before
    outsider.check_output("docker pull %s", pushed["reference"])


def test_onboard_client_takes_a_host_back_out(server, outsider, registry, tmp_path):
    """playbooks/onboard_client.yml refuses to run without a target; with one and
    registry_client_state=absent it takes the client out (the host as the last test's
    inventory has it): the registry is untrusted there again, as on a host never
    onboarded, and its login is gone; the server is untouched."""
    rc, output = converge(playbook="playbooks/onboard_client.yml")
    assert rc != 0
    assert "Name the host(s) to onboard: -e target=newhost" in output
    extra = tmp_path / "newhost.yml"
    extra.write_text("registry_clients:\n  hosts:\n    outsider:\n")
    before = server.check_output(SERVER_STATE)
    rc, output = converge(
        "-e",
        "target=outsider",
        "-e",
        "registry_client_state=absent",
        inventories=[extra],
        playbook="playbooks/onboard_client.yml",
    )
    assert rc == 0, output[-3000:]
    assert recap(output)["outsider"]["changed"] > 0
    assert set(recap(output)) == {"localhost", "outsider"}
    assert server.check_output(SERVER_STATE) == before
    untrusted = http(outsider, "https://%s/v2/" % registry)
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.get("error", ""), untrusted
    assert not outsider.file("/etc/docker/certs.d/%s" % registry).exists
    config = outsider.file("/root/.docker/config.json")
    auths = json.loads(config.content_string).get("auths", {}) if config.exists else {}
    assert registry not in auths, auths
