"""Helpers the Molecule scenarios' testinfra tests share (the fixtures are in conftest.py).

Hosts are reached with `docker exec` into the containers resources/create.yml made.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import testinfra
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_PORT = 5000
REPO = Path(__file__).resolve().parents[2]


SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")

# scripts/lab runs some scenarios on both registry lines (NAME@2: on 2.8). A test of what
# does not depend on the line (the roles' checks, the clients, the lock) runs once, on 3.x.
# Both unset compared equal, so every line-independent test skipped: both must be set.
ON_REGISTRY_2 = bool(os.environ.get("PRIVREG_REGISTRY2_IMAGE")) and os.environ.get(
    "PRIVREG_REGISTRY_IMAGE"
) == os.environ.get("PRIVREG_REGISTRY2_IMAGE")
line_independent = pytest.mark.skipif(
    ON_REGISTRY_2, reason="does not depend on the registry's line; it runs once, on 3.x"
)


def container_name(name):
    """The container of a scenario host (resources/create.yml names them)."""
    return "privreg-mol-%s-%s" % (SCENARIO, name)


def test_host(name):
    """A scenario host by its platform name, reached with docker exec."""
    return testinfra.get_host("docker://" + container_name(name))


test_host.__test__ = False  # a helper, not a test


# Python on the hosts speaks HTTPS with the system trust store: what curl or skopeo would see.
_HTTP_PROBE = r"""
import base64, json, ssl, sys, urllib.error, urllib.request
url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
request = urllib.request.Request(url, method=sys.argv[4] if len(sys.argv) > 4 else "GET")
request.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
for name, value in json.loads(sys.argv[5] if len(sys.argv) > 5 else "{}").items():
    request.add_header(name, value)
if user:
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        out = {"status": response.status, "headers": dict(response.headers),
               "body": response.read().decode(errors="replace")}
except urllib.error.HTTPError as exc:
    out = {"status": exc.code, "headers": dict(exc.headers),
           "body": exc.read().decode(errors="replace")}
except (urllib.error.URLError, ssl.SSLError, OSError) as exc:
    out = {"status": None, "error": repr(getattr(exc, "reason", exc))}
print(json.dumps(out))
"""


def http(host, url, user="", password="", method="GET", headers=None):
    """Make one HTTP request from a test host; return status, headers, body or error."""
    args = " ".join(
        shlex.quote(a) for a in [url, user, password, method, json.dumps(headers or {})]
    )
    result = host.run("python3 -c %s %s" % (shlex.quote(_HTTP_PROBE), args))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def lower_keys(headers):
    """Header names in lower case (HTTP's are case-insensitive; http() keeps them as sent)."""
    return {name.lower(): value for name, value in headers.items()}


def unique_image(host, repository, tag=None, payload_bytes=0, platform=None, changes=None):
    """Build a one-layer image whose content is unique to this run, tagged for repository.

    payload_bytes adds that much random (incompressible) data to the layer, platform
    (os/arch) sets the image's platform, changes are `docker import --change` instructions
    (by default CMD ["/payload"]). The tag is random unless given."""
    token = uuid.uuid4().hex[:12]
    tag = tag or token
    reference = "%s:%s" % (repository, tag)
    changes = ['CMD ["/payload"]'] if changes is None else list(changes)
    options = ["--platform", platform] if platform else []
    for change in changes:
        options += ["--change", change]
    host.check_output(
        "set -e; d=$(mktemp -d); echo %s > $d/payload; "
        "head -c %s /dev/urandom >> $d/payload; tar -C $d -cf - payload "
        "| docker import " + " ".join(["%s"] * len(options)) + " - %s >/dev/null; rm -rf $d",
        token,
        str(payload_bytes),  # testinfra quotes strings only
        *options,
        reference,
    )
    return reference, tag


# A verbose run is there to check what ansible-playbook prints (no secret in it), so it
# runs on the stock strategy operators use, not on Mitogen's (scripts/lab: use_mitogen).
STOCK_STRATEGY = {"ANSIBLE_STRATEGY": "linear"}


def start_playbook(
    *args, inventories=(), playbook="playbooks/site.yml", env=None, own_session=False
):
    """Start a playbook of the collection against the scenario's hosts, its stdout and
    stderr piped: converge() waits for it; a test that acts during a run keeps the process.
    By default site.yml, which every scenario's converge step runs. `env` adds environment
    variables (a callback plugin, say); own_session puts the run and its workers in a
    process group of their own, which a test can kill as a whole."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    for extra in inventories:
        command += ["-i", str(extra)]
    command += [str(REPO / playbook), *args]
    stock = STOCK_STRATEGY if any(a.startswith("-vv") for a in args) else {}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **stock, **(env or {})),
        start_new_session=own_session,
    )


def finish_playbook(process, output="both", timeout=600):
    """Wait for a started playbook; return (rc, output). output="stdout" leaves stderr out."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, stdout if output == "stdout" else stdout + stderr


def kill_playbook_at(process, *patterns):
    """Kill a playbook started with own_session (its whole process group) as soon as its
    output has shown lines matching each of `patterns`, in that order: a point in the run's
    own progress, which a fixed time would miss as the run's speed changes. Returns
    (killed, output); killed is False when the run ended before the last pattern."""
    errors = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    lines, waiting = [], list(patterns)
    for line in process.stdout:
        lines.append(line)
        if waiting and re.search(waiting[0], line):
            waiting.pop(0)
            if not waiting:
                os.killpg(process.pid, signal.SIGKILL)
                break
    # Not read to the end: a helper outside the group could hold the pipe open.
    process.stdout.close()
    process.wait(timeout=60)
    reader.join(timeout=10)
    return not waiting, "".join(lines + errors)


def assert_timer_scheduled(host, timer):
    """The timer is active, enabled and has a next elapse; returns its properties."""
    shown = host.check_output(
        "systemctl show %s -p ActiveState -p UnitFileState -p NextElapseUSecRealtime "
        "-p TimersCalendar",
        timer,
    )
    properties = dict(line.split("=", 1) for line in shown.splitlines())
    assert properties["ActiveState"] == "active", properties
    assert properties["UnitFileState"] == "enabled", properties
    assert properties["NextElapseUSecRealtime"] not in ("", "n/a", "0"), properties
    return properties


def converge(*args, inventories=(), playbook="playbooks/site.yml", env=None, output="both"):
    """Run a playbook of the collection against the scenario's hosts; return (rc, output)."""
    process = start_playbook(*args, inventories=inventories, playbook=playbook, env=env)
    return finish_playbook(process, output)


def recap(output):
    """host -> counters from the PLAY RECAP of an ansible-playbook run."""
    hosts = {}
    for name, counters in re.findall(r"^(\S+)\s*:\s*(ok=.*)$", output, re.MULTILINE):
        hosts[name] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
    return hosts


def docker_login_works(host, registry, user, password):
    """docker login with a throwaway DOCKER_CONFIG: the host's own login stays as it is."""
    return host.run(
        "cfg=$(mktemp -d); echo %s | DOCKER_CONFIG=$cfg "
        "docker login -u %s --password-stdin %s; rc=$?; rm -rf $cfg; exit $rc",
        password,
        user,
        registry,
    )


def manifest_digest(host, registry, repository, tag, user, password):
    url = "https://%s/v2/%s/manifests/%s" % (registry, repository, tag)
    answer = http(host, url, user, password, "HEAD")
    assert answer["status"] == 200, answer
    return answer["headers"]["Docker-Content-Digest"]


# What a refused or no-op run must leave as it was on the registry host: its files (the
# key by hash only) and the container's start time.
SERVER_STATE = (
    "sha256sum /opt/registry/config/config.yml /opt/registry/security/htpasswd "
    "/opt/registry/security/registry.env /opt/registry/certs/server.crt "
    "/opt/registry/certs/server.key /opt/registry/certs/ca.crt; "
    "docker inspect -f '{{.State.StartedAt}}' registry"
)


def push_unique_image(host, repository, **image):
    """Push a fresh one-layer image from host (unique_image's options); return its
    reference, tag and pushed digest."""
    reference, tag = unique_image(host, repository, **image)
    out = host.check_output("docker push %s", reference)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
    return {"reference": reference, "tag": tag, "digest": digest}


def pull_and_check_digest(host, pushed):
    """docker pull on another host; the digest it records must be the one that was pushed."""
    host.check_output("docker pull %s", pushed["reference"])
    inspect = "docker image inspect --format '{{json .RepoDigests}}' %s"
    repo_digests = json.loads(host.check_output(inspect, pushed["reference"]))
    assert any(d.endswith("@" + pushed["digest"]) for d in repo_digests), repo_digests


def container_address(name):
    """A scenario host's address on the test network, as the machine running Molecule sees it."""
    networks = json.loads(
        subprocess.check_output(
            ["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", container_name(name)]
        )
    )
    return next(iter(networks.values()))["IPAddress"]


# Pull load on a host until /tmp/load.stop exists: GET a manifest by digest and its config
# blob, ten times a second, trusting what the host's system store trusts; every failure is
# counted with its time. With a token realm, each pull first fetches a token there with the
# credentials, as docker does (the signing certificates seen are reported).
_PULL_LOAD = r"""
import base64, json, os, sys, time, urllib.request
base, user, password, repository, digest, accept, realm = sys.argv[1:8]
basic = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
signers = []
def authorization():
    if not realm:
        return basic
    request = urllib.request.Request(realm + "&scope=repository:%s:pull" % repository)
    request.add_header("Authorization", basic)
    with urllib.request.urlopen(request, timeout=5) as response:
        token = json.load(response)["token"]
    signer = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["x5c"][0]
    if signer not in signers:
        signers.append(signer)
    return "Bearer " + token
def get(path, auth):
    request = urllib.request.Request(base + path)
    request.add_header("Authorization", auth)
    request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read()
total, failures, slowest = 0, [], 0.0
while not os.path.exists("/tmp/load.stop"):
    total += 1
    started = time.time()
    step = "token"
    try:
        auth = authorization()
        step = "manifest"
        manifest = json.loads(get("/v2/%s/manifests/%s" % (repository, digest), auth))
        step = "blob"
        get("/v2/%s/blobs/%s" % (repository, manifest["config"]["digest"]), auth)
        slowest = max(slowest, time.time() - started)
    except Exception as exc:  # any failed pull counts
        failures.append({"at": started, "step": step, "error": repr(exc)[:200]})
    time.sleep(max(0.0, 0.1 - (time.time() - started)))
print(json.dumps({"requests": total, "failed": len(failures), "failures": failures,
                  "slowest_seconds": round(slowest, 2), "signers": len(signers)}))
"""

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@contextmanager
def pull_load(host_name, base_url, user, password, repository, digest, realm=""):
    """Pulls of repository@digest from host_name while the block runs; with a token realm
    (URL with its ?service=), each with a fresh token. Yields a dict that holds, afterwards,
    requests, failed, failures, outage_seconds (first to last failure) and signers (how many
    token signing certificates were seen)."""
    host = test_host(host_name)
    host.run("rm -f /tmp/load.stop")
    load = subprocess.Popen(
        ["docker", "exec", container_name(host_name), "python3", "-c", _PULL_LOAD]
        + [base_url, user, password, repository, digest, MANIFEST_TYPES, realm],
        stdout=subprocess.PIPE,
        text=True,
    )
    report = {}
    try:
        yield report
        time.sleep(2)  # the load sees the registry answer again
    finally:
        host.run("touch /tmp/load.stop")
        report.update(json.loads(load.communicate(timeout=60)[0]))
        failures = report["failures"]
        report["outage_seconds"] = (
            round(failures[-1]["at"] - failures[0]["at"], 1) if failures else 0.0
        )


# Run on a client (its trust store has the registry's CA): every repository, tag and the
# digest each tag resolves to, plus the children of every index.
_CATALOG_DIGESTS = r"""
import base64, json, sys, urllib.request
base, user, password, accept = sys.argv[1:5]
auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
def get(path, method="GET"):
    request = urllib.request.Request(base + path, method=method)
    request.add_header("Authorization", auth)
    request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers, response.read()
catalog = json.loads(get("/v2/_catalog?n=1000")[1])["repositories"]
out = {}
for repository in catalog:
    tags = json.loads(get("/v2/%s/tags/list?n=1000" % repository)[1]).get("tags") or []
    out[repository] = {}
    for tag in sorted(tags):
        headers, body = get("/v2/%s/manifests/%s" % (repository, tag))
        manifest = json.loads(body)
        out[repository][tag] = {
            "digest": headers["Docker-Content-Digest"],
            "children": [m["digest"] for m in manifest.get("manifests", [])],
        }
print(json.dumps(out, sort_keys=True))
"""


def catalog_digests(client, registry, user, password):
    """{repository: {tag: {digest, children}}} as the registry serves it to client."""
    return json.loads(
        client.check_output(
            "python3 -c %s %s %s %s %s",
            _CATALOG_DIGESTS,
            "https://" + registry,
            user,
            password,
            MANIFEST_TYPES,
        )
    )


def pull_by_digest(client, registry, repository, digest, platform=None):
    """docker pull repository@digest on client, nothing of it cached there before."""
    reference = "%s/%s@%s" % (registry, repository, digest)
    client.run("docker rmi -f %s", reference)
    options = "--platform %s " % platform if platform else ""
    client.check_output("docker pull " + options + "%s", reference)


def secret_renderings(secret):
    """The ways a secret can appear in a run's output or a journal: as it is, JSON-escaped
    (ASCII or not), inside YAML's double or single quotes, as Python writes it, and quoted
    for a shell."""
    forms = {secret, repr(secret)[1:-1], shlex.quote(secret)}
    for ensure_ascii in (True, False):
        forms.add(json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1])
    for style in ('"', "'"):
        for allow_unicode in (True, False):
            dumped = yaml.safe_dump(
                secret, default_style=style, allow_unicode=allow_unicode, width=float("inf")
            )
            forms.add(dumped.strip()[1:-1])
    return forms


def leaked(secrets, text):
    """The positions in secrets of those found in text in any rendering (never the secrets
    themselves: a failing assertion prints what it compares)."""
    return [
        index
        for index, secret in enumerate(secrets)
        if any(form in text for form in secret_renderings(secret))
    ]


def replace_hosts(*names):
    """Lose scenario hosts and rebuild them: each container and its volumes removed, a new
    one of the same image started under the same name (resources/replace_hosts.yml)."""
    hosts = [
        {
            "name": name,
            "image": subprocess.check_output(
                ["docker", "inspect", "-f", "{{.Config.Image}}", container_name(name)], text=True
            ).strip(),
        }
        for name in names
    ]
    result = subprocess.run(
        [
            "ansible-playbook",
            str(Path(__file__).resolve().parent / "resources" / "replace_hosts.yml"),
            "-e",
            json.dumps({"replaced_hosts": hosts}),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


# Pushes from a client, one after another until /tmp/push.stop exists: each a new
# one-layer image (300 kB of random data) tagged with its number; one line per push:
# number, start and end (epoch seconds), and the digest pushed or "failed".
_PUSH_LOAD = r"""
i=0
while [ ! -e /tmp/push.stop ]; do
  i=$((i+1)); d=$(mktemp -d); ref="$1:$i"
  head -c 300000 /dev/urandom > "$d/payload"
  tar -C "$d" -cf - payload | docker import - "$ref" >/dev/null
  started=$(date +%s.%N)
  if out=$(docker push "$ref" 2>&1); then
    digest=$(printf '%s\n' "$out" | sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p')
    echo "$i $started $(date +%s.%N) ${digest:-failed}"
  else
    echo "$i $started $(date +%s.%N) failed"
  fi
  docker rmi "$ref" >/dev/null 2>&1; rm -rf "$d"
done
"""


@contextmanager
def push_load(host_name, repository):
    """docker push of new images to repository from host_name while the block runs. Yields
    a list that holds, afterwards, every push: {tag, started, finished, digest or None}."""
    host = test_host(host_name)
    host.run("rm -f /tmp/push.stop")
    load = subprocess.Popen(
        ["docker", "exec", container_name(host_name), "bash", "-c", _PUSH_LOAD, "push", repository],
        stdout=subprocess.PIPE,
        text=True,
    )
    pushes = []
    try:
        yield pushes
    finally:
        host.run("touch /tmp/push.stop")
        for line in load.communicate(timeout=120)[0].splitlines():
            tag, started, finished, digest = line.split()
            pushes.append(
                {
                    "tag": tag,
                    "started": float(started),
                    "finished": float(finished),
                    "digest": None if digest == "failed" else digest,
                }
            )


def storage_s3(variables):
    """boto3's S3 resource for the scenario's storage host (SeaweedFS, resources/
    prepare_s3_store.yml), with the scenario's keys (its s3_access_key, s3_secret_key)."""
    import boto3  # only the scenarios with a storage host need it

    return boto3.resource(
        "s3",
        endpoint_url="http://%s:8333" % container_address("storage"),
        aws_access_key_id=variables["s3_access_key"],
        aws_secret_access_key=variables["s3_secret_key"],
        region_name="us-east-1",
    )


# --- an operator's PKI, for the tests of provided TLS ------------------------------------


def operator_certificate(subject, key, issuer_name, issuer_key, ca, names=()):
    """A certificate of an operator's PKI (a CA when ca, else a server certificate for
    names), with what strict verifiers (Python 3.13, Go) ask for: key usage and key
    identifiers."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*objects):
    """Certificates and private keys (PKCS#8, unencrypted) as one PEM text."""
    out = b""
    for item in objects:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    return out
