"""The project's benchmark on the local lab (`scripts/lab bench`), not a test.

One run, the same hosts, each figure beside its yardstick:
- data path: a blob of N MiB (random, a new one per upload) uploaded from client1 and
  downloaded on client2 through the registry run by hand (the yardstick: the deployment's
  image started with `docker run` as the owner's notes do, with the deployment's own
  certificate, key and htpasswd file, port 5003), the deployment (:5000, TLS and login),
  the web front (:443) and a bare registry (plain HTTP, no auth, port 5002: the price of
  security, not a target); medians of several rounds, interleaved, and the ratios.
  The blob API is driven directly (what docker push/pull do once compressed), so gzip and
  layer extraction on the clients do not hide the path's own cost;
- a fresh lab: the hosts recreated and the first run of site.yml timed;
- converge: the no-op run of site.yml against a floor play that runs as many `ping` tasks
  per host as the no-op run ran on it;
- onboarding: site.yml --limit for one new client, then for eight at once;
- the UI: Debian's Chromium opens a repository with 200 tags through the front; the time
  until the tag list shows, and the time the UI reports for its first page.
The report goes to artifacts/bench/ as JSON (compare runs across commits).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
SERVER, CLIENT1, CLIENT2 = "privreg-lab-registry", "privreg-lab-client1", "privreg-lab-client2"
USER, PASSWORD = "lab", "lab-password-not-secret"  # the lab's throwaway login
BARE_PORT, BY_HAND_PORT = 5002, 5003
ENDPOINTS = {
    "by_hand": "https://registry.lab:%d" % BY_HAND_PORT,
    "deployment": "https://registry.lab:5000",
    "front": "https://registry.lab",
    "bare": "http://registry.lab:%d" % BARE_PORT,
}
# The deployment's files the registry run by hand is given (registry_server's layout).
DEPLOYED_CERTS, DEPLOYED_HTPASSWD = "/opt/registry/certs", "/opt/registry/security/htpasswd"

# On a client: upload (PATCH streamed in 1 MiB chunks, then PUT with the digest, as docker
# does) or download one blob, timing only the transfer. Prints JSON.
_TRANSFER = r"""
import base64, hashlib, http.client, json, os, ssl, sys, time, urllib.parse
mode, base, repo, user, password, arg = sys.argv[1:7]
parts = urllib.parse.urlsplit(base)
def connect():
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443,
                                           context=ssl.create_default_context())
    return http.client.HTTPConnection(parts.hostname, parts.port or 80)
headers = {}
if user:
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    headers["Authorization"] = "Basic " + token
conn = connect()
def call(method, path, body=None, extra=None, chunked=False):
    conn.request(method, path, body=body, headers=dict(headers, **(extra or {})),
                 encode_chunked=chunked)
    response = conn.getresponse()
    return response
if mode == "upload":
    size = int(arg) << 20
    prefix = os.urandom(32)
    digest = hashlib.sha256()
    def body():
        digest.update(prefix)
        yield prefix
        with open("/var/tmp/bench.bin", "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                yield chunk
    started = time.monotonic()
    response = call("POST", "/v2/%s/blobs/uploads/" % repo)
    response.read()
    assert response.status == 202, response.status
    location = urllib.parse.urlsplit(response.getheader("Location"))
    response = call("PATCH", "%s?%s" % (location.path, location.query), body(),
                    {"Content-Type": "application/octet-stream"}, chunked=True)
    response.read()
    assert response.status == 202, response.status
    location = urllib.parse.urlsplit(response.getheader("Location"))
    done = "sha256:" + digest.hexdigest()
    response = call("PUT", "%s?%s&digest=%s" % (location.path, location.query, done))
    response.read()
    assert response.status == 201, response.status
    print(json.dumps({"seconds": time.monotonic() - started, "digest": done, "bytes": size + 32}))
else:
    started = time.monotonic()
    response = call("GET", "/v2/%s/blobs/%s" % (repo, arg))
    assert response.status == 200, response.status
    digest, total = hashlib.sha256(), 0
    while chunk := response.read(1 << 20):
        digest.update(chunk)
        total += len(chunk)
    assert "sha256:" + digest.hexdigest() == arg
    print(json.dumps({"seconds": time.monotonic() - started, "bytes": total}))
"""


def run(command, check=True, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, check=check, **kwargs)


def dexec(container, *command):
    result = run(["docker", "exec", container, *command], check=False)
    if result.returncode != 0:
        sys.exit("on %s: %s failed:\n%s" % (container, command[0], result.stderr[-3000:]))
    return result.stdout


def playbook(*args):
    """ansible-playbook with the lab inventory; returns (seconds, output)."""
    started = time.monotonic()
    result = run(
        ["ansible-playbook", "-i", str(LAB), *args],
        check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit("ansible-playbook %s failed:\n%s" % (" ".join(args), result.stdout[-4000:]))
    return seconds, result.stdout


def recap(output):
    return {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
        for host, counters in re.findall(r"^(\S+)\s*:\s*(ok=.*)$", output, re.MULTILINE)
    }


def median(values):
    return round(statistics.median(values), 3)


# --- a fresh lab ------------------------------------------------------------------------


def fresh_lab():
    """Recreate the lab hosts and time the first run of site.yml on them."""
    hosts = str(ROOT / "tests" / "lab" / "hosts.yml")
    playbook(hosts, "-e", "lab_state=absent")
    playbook(hosts)
    seconds, output = playbook(str(ROOT / "site.yml"))
    return {"cold_converge_s": round(seconds, 1), "recap": recap(output)}


# --- data path --------------------------------------------------------------------------


# The registry the owner's notes run by hand: `docker run` of the same image with the
# certificate, key and htpasswd file the deployment uses (the same bcrypt cost), nothing else.
_BY_HAND = [
    "--publish", "%d:5000" % BY_HAND_PORT,
    "--volume", "%s:/certs:ro" % DEPLOYED_CERTS,
    "--volume", "%s:/auth/htpasswd:ro" % DEPLOYED_HTPASSWD,
    "--env", "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/server.crt",
    "--env", "REGISTRY_HTTP_TLS_KEY=/certs/server.key",
    "--env", "REGISTRY_AUTH=htpasswd",
    "--env", "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm",
    "--env", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
]  # fmt: skip
_ANSWERS = r"""
import ssl, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/v2/", context=ssl.create_default_context())
except urllib.error.HTTPError as error:
    sys.exit(0 if error.code == 401 else 1)
"""


def start_yardstick_registries():
    """The bare registry and the one run by hand, each on a volume of its own; returns the
    image (the deployment's)."""
    image = dexec(SERVER, "docker", "inspect", "-f", "{{.Config.Image}}", "registry").strip()
    stop_yardstick_registries()  # what an interrupted run left behind
    for name, options in (("bare", ["--publish", "%d:5000" % BARE_PORT]), ("by-hand", _BY_HAND)):
        dexec(
            SERVER,
            "docker", "run", "--detach", "--name", "bench-%s" % name,
            "--env", "OTEL_TRACES_EXPORTER=none",
            "--volume", "/opt/bench-%s:/var/lib/registry" % name, *options, image,
        )  # fmt: skip
    for endpoint in ("bare", "by_hand"):
        for _attempt in range(30):
            probe = run(["docker", "exec", CLIENT1, "python3", "-c", _ANSWERS,
                         ENDPOINTS[endpoint]], check=False)  # fmt: skip
            if probe.returncode == 0:
                break
            time.sleep(1)
        else:
            sys.exit("the %s registry did not answer" % endpoint)
    return image


def stop_yardstick_registries():
    dexec(SERVER, "sh", "-c", "docker rm -f bench-bare bench-by-hand >/dev/null 2>&1; "
          "rm -rf /opt/bench-bare /opt/bench-by-hand")  # fmt: skip


def write_random_data(size_mib):
    """size_mib random MiB in /var/tmp/bench.bin on client1, the data every step sends."""
    dexec(CLIENT1, "sh", "-c", "head -c %dM /dev/urandom >/var/tmp/bench.bin" % size_mib)


def add_medians_and_ratios(results, kinds):
    """For each path and kind (upload, pull, ...): the median of its rounds and its speed
    relative to the registry run by hand (the yardstick), to the bare registry and, for the
    front, to the deployment it fronts (1.0 is as fast, 0.5 half as fast)."""
    for figures in results.values():
        for kind in kinds:
            figures["%s_median_s" % kind] = median(figures["%s_s" % kind])
    for figures in results.values():
        for kind in kinds:
            for other in ("by_hand", "bare"):
                figures["%s_vs_%s" % (kind, other)] = round(
                    results[other]["%s_median_s" % kind] / figures["%s_median_s" % kind], 3
                )
    for kind in kinds:
        results["front"]["%s_vs_deployment" % kind] = round(
            results["deployment"]["%s_median_s" % kind] / results["front"]["%s_median_s" % kind], 3
        )
        # Round by round (the paths run one after another in each round, so a slow moment of
        # the machine weighs on both): the spread says whether 0.95 and 1.0 can be told apart.
        for path, yardstick in (("deployment", "by_hand"), ("front", "deployment")):
            paired = [
                yard / own
                for yard, own in zip(
                    results[yardstick]["%s_s" % kind], results[path]["%s_s" % kind]
                )
            ]
            results[path]["%s_vs_%s_by_round" % (kind, yardstick)] = {
                "median": median(paired),
                "min": round(min(paired), 3),
                "max": round(max(paired), 3),
            }


def transfer(container, mode, endpoint, arg):
    # Only the bare registry takes requests without a login.
    user, password = ("", "") if endpoint == "bare" else (USER, PASSWORD)
    out = dexec(container, "python3", "-c", _TRANSFER, mode, ENDPOINTS[endpoint],
                "bench/blob", user, password, str(arg))  # fmt: skip
    return json.loads(out)


def data_path(size_mib, rounds):
    image = start_yardstick_registries()
    write_random_data(size_mib)
    results = {name: {"upload_s": [], "download_s": []} for name in ENDPOINTS}
    try:
        for _round in range(rounds):
            for name in ENDPOINTS:
                pushed = transfer(CLIENT1, "upload", name, size_mib)
                pulled = transfer(CLIENT2, "download", name, pushed["digest"])
                results[name]["upload_s"].append(round(pushed["seconds"], 3))
                results[name]["download_s"].append(round(pulled["seconds"], 3))
    finally:
        stop_yardstick_registries()
        dexec(CLIENT1, "rm", "-f", "/var/tmp/bench.bin")
    add_medians_and_ratios(results, ("upload", "download"))
    for figures in results.values():
        figures["upload_mib_s"] = round(size_mib / figures["upload_median_s"], 1)
        figures["download_mib_s"] = round(size_mib / figures["download_median_s"], 1)
    return {"image": image, "size_mib": size_mib, "rounds": rounds, "paths": results}


# --- docker push / pull (issue 14's own method) -----------------------------------------

DOCKER_REFS = {"by_hand": "registry.lab:%d" % BY_HAND_PORT, "deployment": "registry.lab:5000",
               "front": "registry.lab", "bare": "registry.lab:%d" % BARE_PORT}  # fmt: skip
# On a client: trust the registry run by hand as an operator would (the CA in Docker's
# certs.d for its host and port), or forget it again.
_BY_HAND_CA = "/etc/docker/certs.d/registry.lab:%d" % BY_HAND_PORT
_DEPLOYMENT_CA = "/etc/docker/certs.d/registry.lab:5000/ca.crt"

# On a client: add or remove the bare registry in daemon.json's insecure-registries (the
# role keeps registries it did not write; a file that held nothing else goes again) and
# restart Docker only when the file changed.
_PLAIN_HTTP = r"""
import json, os, subprocess, sys
state, registry = sys.argv[1:3]
path = "/etc/docker/daemon.json"
config = {}
if os.path.exists(path):
    with open(path) as f:
        config = json.load(f)
listed = config.get("insecure-registries", [])
wanted = [r for r in listed if r != registry] + ([registry] if state == "present" else [])
if wanted != listed:
    config["insecure-registries"] = wanted
    if not wanted:
        del config["insecure-registries"]
    if config:
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
    else:
        os.remove(path)
    subprocess.run(["systemctl", "restart", "docker"], check=True)
"""

# On a client: run one docker command and print its wall time (docker exec's own start-up
# stays out of the figure).
_TIMED = r"""
import json, subprocess, sys, time
started = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(json.dumps({"seconds": time.monotonic() - started}))
"""


def timed(container, *command):
    return json.loads(dexec(container, "python3", "-c", _TIMED, *command))["seconds"]


def docker_path(size_mib, rounds):
    """docker push of a one-layer image of size_mib random MiB from client1, docker pull on
    client2, through each path; a new layer each time (32 fresh bytes beside the data), so
    no push finds its layer already there and no pull its layer already local."""
    image = start_yardstick_registries()
    for client in (CLIENT1, CLIENT2):
        dexec(client, "python3", "-c", _PLAIN_HTTP, "present", DOCKER_REFS["bare"])
        dexec(client, "sh", "-c", "mkdir -p %s && cp %s %s/"
              % (_BY_HAND_CA, _DEPLOYMENT_CA, _BY_HAND_CA))  # fmt: skip
        dexec(client, "sh", "-c", 'printf %s "$1" | docker login -u "$2" --password-stdin "$3" '
              '>/dev/null', "-", PASSWORD, USER, DOCKER_REFS["by_hand"])  # fmt: skip
        dexec(client, "sh", "-c", 'printf %s "$1" | docker login -u "$2" --password-stdin '
              'registry.lab >/dev/null', "-", PASSWORD, USER)  # fmt: skip
    write_random_data(size_mib)
    results = {name: {"push_s": [], "pull_s": []} for name in DOCKER_REFS}
    try:
        for number in range(rounds):
            for name, registry in DOCKER_REFS.items():
                ref = "%s/bench/docker:r%d" % (registry, number)
                dexec(CLIENT1, "sh", "-c", "head -c 32 /dev/urandom >/var/tmp/bench.salt && "
                      "tar -C /var/tmp -c bench.bin bench.salt | docker import - %s >/dev/null"
                      % ref)  # fmt: skip
                results[name]["push_s"].append(round(timed(CLIENT1, "docker", "push", ref), 3))
                dexec(CLIENT1, "docker", "rmi", ref)
                results[name]["pull_s"].append(round(timed(CLIENT2, "docker", "pull", ref), 3))
                dexec(CLIENT2, "docker", "rmi", ref)
    finally:
        stop_yardstick_registries()
        dexec(CLIENT1, "rm", "-f", "/var/tmp/bench.bin", "/var/tmp/bench.salt")
        for client in (CLIENT1, CLIENT2):
            dexec(client, "python3", "-c", _PLAIN_HTTP, "absent", DOCKER_REFS["bare"])
            dexec(client, "docker", "logout", "registry.lab")
            dexec(client, "docker", "logout", DOCKER_REFS["by_hand"])
            dexec(client, "rm", "-rf", _BY_HAND_CA)
    add_medians_and_ratios(results, ("push", "pull"))
    return {"image": image, "size_mib": size_mib, "rounds": rounds, "paths": results}


# --- token mode's first request (issue 32) ---------------------------------------------

# Token mode for the step: one rule, every signed-in account may do everything.
TOKEN_MODE = {
    "registry_server_auth_mode": "token",
    "registry_token_acl": [{"account": "*", "repository": "*", "actions": ["*"]}],
}
TOKEN_REALM = "https://registry.lab:5443/token"

# On a client: `rounds` token requests as docker makes one (a new TLS connection, basic
# credentials, one repository's pull scope); each one's seconds, as JSON.
_TOKEN_REQUESTS = r"""
import base64, json, ssl, sys, time, urllib.request
url, user, password, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
seconds = []
for _ in range(rounds):
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"Authorization": auth})
    with urllib.request.urlopen(request, context=ssl.create_default_context()) as answer:
        assert json.load(answer)["token"]
    seconds.append(time.monotonic() - started)
print(json.dumps(seconds))
"""


def token_first_request(rounds):
    """The lab converged into token mode: `docker pull` of a small image (one layer of 1
    MiB, removed before each pull) on client2, and the token request such a pull makes
    (one per repository and scope), timed apart on the same client; its share of the pull.
    The lab is converged back to basic auth afterwards."""
    playbook(str(ROOT / "site.yml"), "-e", json.dumps(TOKEN_MODE))
    ref = "registry.lab:5000/bench/small:1"
    pulls = []
    try:
        dexec(CLIENT1, "sh", "-c", "head -c 1M /dev/urandom >/var/tmp/small.bin && tar -C "
              "/var/tmp -c small.bin | docker import - %s >/dev/null && docker push %s "
              ">/dev/null" % (ref, ref))  # fmt: skip
        for _round in range(rounds):
            dexec(CLIENT2, "sh", "-c", "docker rmi %s >/dev/null 2>&1 || true" % ref)
            pulls.append(round(timed(CLIENT2, "docker", "pull", ref), 3))
        url = TOKEN_REALM + "?service=privreg-registry&scope=repository:bench/small:pull"
        tokens = json.loads(dexec(CLIENT2, "python3", "-c", _TOKEN_REQUESTS, url, USER,
                                  PASSWORD, str(rounds)))  # fmt: skip
    finally:
        dexec(CLIENT1, "sh", "-c", "rm -f /var/tmp/small.bin; docker rmi %s >/dev/null 2>&1 "
              "|| true" % ref)  # fmt: skip
        playbook(str(ROOT / "site.yml"))
    tokens = [round(value, 4) for value in tokens]
    return {
        "pull_s": pulls,
        "token_request_s": tokens,
        "pull_median_s": median(pulls),
        "token_request_median_s": median(tokens),
        "token_share_of_pull": round(median(tokens) / median(pulls), 3),
    }


# --- converge ---------------------------------------------------------------------------


def floor_playbook(tasks_per_host):
    most = max(tasks_per_host.values())
    tasks = [
        {
            "name": "ping %d" % index,
            "ansible.builtin.ping": None,
            "when": "%d < bench_floor_tasks[inventory_hostname] | int" % index,
        }
        for index in range(most)
    ]
    play = [{"name": "Floor", "hosts": "all", "gather_facts": False, "tasks": tasks}]
    path = Path(tempfile.mkdtemp()) / "floor.yml"
    path.write_text(json.dumps(play))
    return path


def converge(rounds):
    noop, floor, counted = [], [], {}
    for _round in range(rounds):
        seconds, output = playbook(str(ROOT / "site.yml"))
        counters = recap(output)
        assert all(c["changed"] == 0 for c in counters.values()), counters
        counted = {host: c["ok"] + c["changed"] for host, c in counters.items()}
        noop.append(round(seconds, 2))
    path = floor_playbook(counted)
    for _round in range(rounds):
        seconds, _output = playbook(str(path), "-e", json.dumps({"bench_floor_tasks": counted}))
        floor.append(round(seconds, 2))
    return {
        "tasks_run_per_host": counted,
        "noop_s": noop,
        "floor_s": floor,
        "noop_median_s": median(noop),
        "floor_median_s": median(floor),
        "noop_vs_floor": round(median(noop) / median(floor), 3),
    }


# --- onboarding -------------------------------------------------------------------------


def bench_inventory(count):
    image = "privreg-test/debian-base:trixie"
    hosts = {
        "bench%d.lab" % i: {"ansible_host": "privreg-lab-bench%d" % i, "lab_image": image}
        for i in range(1, count + 1)
    }
    path = Path(tempfile.mkdtemp()) / "bench.yml"
    path.write_text(json.dumps({"all": {"children": {"registry_clients": {"hosts": hosts}}}}))
    return path, sorted(hosts)


def onboarding(many):
    inventory, hosts = bench_inventory(many + 1)
    extra = ["-i", str(inventory)]
    limit = ",".join(hosts)
    playbook(*extra, str(ROOT / "tests" / "lab" / "hosts.yml"), "--limit", limit)
    try:
        one = playbook(*extra, str(ROOT / "site.yml"), "--limit", hosts[0])[0]
        eight = playbook(*extra, str(ROOT / "site.yml"), "--limit", ",".join(hosts[1:]))[0]
    finally:
        # Only the bench's hosts go: hosts.yml with lab_state=absent would take the lab's
        # network (and every host on it) too.
        for host in hosts:
            name = "privreg-lab-" + host.split(".")[0]
            run(["docker", "rm", "-f", name], check=False)
            run(["docker", "volume", "rm", name + "-docker"], check=False)
    return {
        "one_client_s": round(one, 1),
        "clients_at_once": many,
        "many_clients_s": round(eight, 1),
        "many_vs_one": round(eight / one, 2),
    }


# --- the UI -----------------------------------------------------------------------------


def push_tags(count):
    """count tags in bench/ui, each its own image config, pushed through the front."""
    script = r"""
import base64, hashlib, http.client, json, ssl, sys, urllib.parse
count, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
conn = http.client.HTTPSConnection("registry.lab", 443, context=ssl.create_default_context())
def call(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=dict(headers or {}, Authorization=auth))
    response = conn.getresponse(); data = response.read()
    assert response.status < 300, (method, path, response.status, data[:200])
    return response
def upload(blob):
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    started = call("POST", "/v2/bench/ui/blobs/uploads/")
    location = urllib.parse.urlsplit(started.getheader("Location"))
    call("PUT", "%s?%s&digest=%s" % (location.path, location.query, digest), blob,
         {"Content-Type": "application/octet-stream"})
    return digest
layer = b"bench layer" * 1000
layer_digest = upload(layer)
OCI = "application/vnd.oci.image.manifest.v1+json"
for i in range(count):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "created": "2026-01-01T00:%02d:%02dZ" % (i // 60, i % 60),
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": upload(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest, "size": len(layer)}]}
    call("PUT", "/v2/bench/ui/manifests/t%03d" % i, json.dumps(manifest).encode(),
         {"Content-Type": OCI})
"""
    dexec(CLIENT1, "python3", "-c", script, str(count), USER, PASSWORD)


def ui(count, rounds):
    from playwright.sync_api import sync_playwright

    push_tags(count)
    address = json.loads(run(["docker", "inspect", SERVER]).stdout)[0]["NetworkSettings"][
        "Networks"
    ]
    address = next(iter(address.values()))["IPAddress"]
    home = Path(tempfile.mkdtemp())
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    ca = home / "ca.crt"
    ca.write_text(dexec(SERVER, "cat", "/opt/registry/certs/ca.crt"))
    run(["certutil", "-d", "sql:%s" % nssdb, "-N", "--empty-password"])
    run(["certutil", "-d", "sql:%s" % nssdb, "-A", "-t", "C,,", "-n", "lab", "-i", str(ca)])
    listed, reported, failed = [], [], []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                  "--host-resolver-rules=MAP registry.lab %s, MAP * ~NOTFOUND" % address],
            env=dict(os.environ, HOME=str(home)),
        )  # fmt: skip
        try:
            for _round in range(rounds):
                page = browser.new_context().new_page()
                page.goto("https://registry.lab/")
                page.fill("#login-user", USER)
                page.fill("#login-password", PASSWORD)
                page.click("#login-submit")
                page.wait_for_selector("#repo-table")
                started = time.monotonic()
                page.goto("https://registry.lab/#/repo/bench%2Fui")
                page.wait_for_selector('#tag-total[data-total="%d"]' % count, timeout=60000)
                page.wait_for_selector("#tag-table[data-rendered-ms]", timeout=60000)
                listed.append(round(time.monotonic() - started, 3))
                reported.append(int(page.locator("#tag-table").get_attribute("data-rendered-ms")))
                # Rows whose details could not be fetched: a fast page that failed is no figure.
                failed.append(page.locator("#tag-table td.digest:not([data-digest])").count())
                page.context.close()
        finally:
            browser.close()
    return {
        "tags": count,
        "seconds_until_first_page_filled": listed,
        "median_s": median(listed),
        "ui_reported_ms": reported,
        "rows_without_details": failed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tags", type=int, default=200)
    step_names = ["lab", "data_path", "docker_path", "token", "converge", "onboarding", "ui"]
    parser.add_argument("--only", nargs="*", default=step_names)
    parser.add_argument(
        "--out",
        default=str(Path(os.environ.get("PRIVREG_ARTIFACTS", ROOT / "artifacts")) / "bench"),
    )
    args = parser.parse_args()

    commit = run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], check=False
    ).stdout.strip()
    report = {"commit": commit, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count()}  # fmt: skip
    steps = {
        "lab": fresh_lab,
        "data_path": lambda: data_path(args.size_mib, args.rounds),
        "docker_path": lambda: docker_path(args.size_mib, args.rounds),
        "token": lambda: token_first_request(max(args.rounds, 10)),
        "converge": lambda: converge(args.rounds),
        "onboarding": lambda: onboarding(args.clients),
        "ui": lambda: ui(args.tags, args.rounds),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("bench-%s.json" % datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    for name in args.only:
        print("bench: %s ..." % name, file=sys.stderr, flush=True)
        report[name] = steps[name]()
        print(json.dumps({name: report[name]}, indent=2), flush=True)
        # Written after every step: a later step's failure keeps the figures so far.
        path.write_text(json.dumps(report, indent=2) + "\n")
    print("report: %s" % path)


if __name__ == "__main__":
    main()
