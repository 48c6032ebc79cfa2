"""Two replicas behind the balancer: both serve, an upload moves between them, and a load
loop through the balancer goes on while replicas, their engines and the store fail."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from registry_helpers import (
    container_address,
    container_name,
    converge,
    finish_playbook,
    http,
    kill_playbook_at,
    leaked,
    pull_and_check_digest,
    push_unique_image,
    recap,
    start_playbook,
    test_host,
)

LB = "lb:5000"
CA = "/etc/docker/certs.d/%s/ca.crt" % LB
LOAD_LOOP = Path(__file__).with_name("load_loop.py")
STOP_FILE = "/root/stop-load"
REPLICAS = ("registry-1", "registry-2")
# Every image the load loops pushed, across all faults: each must still pull at the end.
PUSHED = []
RESULTS = {}


def put_file(path, content):
    """Write a file on the client host."""
    subprocess.run(
        ["docker", "exec", "-i", container_name("client-a"), "sh", "-c", "cat > " + path],
        input=content,
        check=True,
    )


@pytest.fixture(scope="module")
def client():
    put_file("/root/load_loop.py", LOAD_LOOP.read_bytes())
    return test_host("client-a")


@pytest.fixture(scope="module")
def lb():
    return test_host("lb")


def backend_states(lb_host):
    """replica -> (status, requests served), from HAProxy's runtime API."""
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
        "s.sendall(b'show stat\\n'); data = b''\n"
        "while True:\n    chunk = s.recv(65536)\n    if not chunk: break\n    data += chunk\n"
        "print(data.decode())"
    )
    out = lb_host.check_output("python3 -c %s", script)
    lines = out.strip().splitlines()
    header = lines[0].lstrip("# ").split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "replicas" and row.get("svname") in REPLICAS:
            states[row["svname"]] = (row["status"], int(row["stot"] or 0))
    return states


def registry_started_at(replica):
    """When the replica's registry container last started ('' while it cannot be asked)."""
    result = subprocess.run(
        [
            "docker",
            "exec",
            container_name(replica),
            "docker",
            "inspect",
            "-f",
            "{{.State.StartedAt}}",
            "registry",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def wait_full_service(lb_host, client_host, started, restarted=None, limit=180):
    """Seconds from `started` until the faulty replica's registry runs again (a new start,
    when `restarted` gives the replica and its start before the fault) and answers, every
    replica is UP at the balancer, and /v2/ answers through it."""
    while time.monotonic() - started < limit:
        if restarted:
            replica, before = restarted
            now = registry_started_at(replica)
            direct = http(client_host, "https://%s:5000/v2/" % replica)["status"]
            if not now or now == before or direct != 401:
                time.sleep(0.5)
                continue
        states = backend_states(lb_host)
        all_up = all(states.get(r, ("",))[0] == "UP" for r in REPLICAS)
        if all_up and http(client_host, "https://%s/v2/" % LB)["status"] == 401:
            return time.monotonic() - started
        time.sleep(0.5)
    states = backend_states(lb_host)
    raise AssertionError("no full service %d s after the fault: %s" % (limit, states))


def start_load(max_seconds=300, address=LB):
    subprocess.run(
        ["docker", "exec", container_name("client-a"), "rm", "-f", STOP_FILE], check=True
    )
    command = "python3 /root/load_loop.py https://%s %s pusher molecule-pusher-pw %s %d" % (
        address,
        CA,
        STOP_FILE,
        max_seconds,
    )
    return subprocess.Popen(
        ["docker", "exec", container_name("client-a"), "sh", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_load(process):
    subprocess.run(["docker", "exec", container_name("client-a"), "touch", STOP_FILE], check=True)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    PUSHED.extend(report["images"])
    return report


def host_exec(name, command):
    subprocess.run(["docker", "exec", container_name(name), "sh", "-c", command], check=True)


def record(fault, report, seconds):
    RESULTS[fault] = {
        "requests": report["requests"],
        "requests_failed": report["requests_failed"],
        "pushes": report["pushes"],
        "push_attempts_failed": report["push_attempts_failed"],
        "pushes_failed": report["pushes_failed"],
        "pulls": report["pulls"],
        "pulls_failed": report["pulls_failed"],
        "seconds_to_full_service": round(seconds, 1),
        "errors": report["errors"][:10],
    }
    record_results()


def record_results():
    """The figures of every fault so far, for the closing note (artifacts/ha-faults.json)."""
    out = Path(os.environ.get("PRIVREG_ARTIFACTS", "/tmp")) / "ha-faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2) + "\n")


def test_both_replicas_serve_through_the_balancer(client, lb):
    before = backend_states(lb)
    assert set(before) == set(REPLICAS), before
    assert all(state[0] == "UP" for state in before.values()), before
    for attempt in range(8):
        answer = http(client, "https://%s/v2/" % LB, "pusher", "molecule-pusher-pw")
        assert answer["status"] == 200, (attempt, answer)
    after = backend_states(lb)
    served = {r: after[r][1] - before[r][1] for r in REPLICAS}
    assert all(count > 0 for count in served.values()), served


def test_a_wrong_password_is_refused_through_the_balancer(client):
    assert http(client, "https://%s/v2/" % LB)["status"] == 401
    assert http(client, "https://%s/v2/" % LB, "pusher", "wrong")["status"] == 401


_SPLIT_UPLOAD = r"""
import base64, hashlib, http.client, json, ssl, sys, urllib.parse
auth = "Basic " + base64.b64encode(b"pusher:molecule-pusher-pw").decode()
context = ssl.create_default_context()
data = b"an upload that moves between replicas " + sys.argv[1].encode()
digest = "sha256:" + hashlib.sha256(data).hexdigest()
def call(host, method, path, body=None):
    c = http.client.HTTPSConnection(host, 5000, context=context, timeout=30)
    c.request(method, path, body=body, headers={"Authorization": auth})
    r = c.getresponse()
    return r.status, r.getheader("Location"), r.read()
status, location, _ = call("registry-1", "POST", "/v2/split/upload/blobs/uploads/")
assert status == 202, status
url = urllib.parse.urlsplit(location)
status, _, body = call("registry-2", "PUT", url.path + "?" + url.query + "&digest=" + digest, data)
got, _, blob = call("registry-1", "GET", "/v2/split/upload/blobs/" + digest)
print(json.dumps({"put": status, "body": body.decode(errors="replace")[:200], "get": got,
                  "same": hashlib.sha256(blob).hexdigest() == digest[7:]}))
"""


def test_an_upload_begun_on_one_replica_ends_on_the_other(client):
    """The shared http.secret: the upload state registry-1 signed is accepted by registry-2."""
    out = json.loads(client.check_output("python3 -c %s %s", _SPLIT_UPLOAD, str(time.time())))
    assert out["put"] == 201, out
    assert out["get"] == 200, out
    assert out["same"], out


def test_docker_push_and_pull_through_the_balancer(client):
    pushed = push_unique_image(client, LB + "/ha/docker")
    client.check_output("docker rmi %s", pushed["reference"])
    pull_and_check_digest(client, pushed)


# Each fault returns the replica whose registry it restarts (None: it restarts none).
def replica_container_killed(client, lb):
    pid = subprocess.check_output(
        [
            "docker",
            "exec",
            container_name("registry-1"),
            "docker",
            "inspect",
            "-f",
            "{{.State.Pid}}",
            "registry",
        ],
        text=True,
    ).strip()
    host_exec("registry-1", "kill -9 %s" % shlex.quote(pid))
    return "registry-1"


def replica_host_restarted(client, lb):
    name = container_name("registry-2")
    subprocess.run(["docker", "stop", "--signal", "SIGRTMIN+3", "-t", "60", name], check=True)
    time.sleep(3)
    subprocess.run(["docker", "start", name], check=True)
    return "registry-2"


def replica_engine_restarted(client, lb):
    host_exec("registry-1", "systemctl restart docker")
    return "registry-1"


FAULTS = [replica_container_killed, replica_host_restarted, replica_engine_restarted]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_the_load_goes_on_through_a_replica_fault(client, lb, fault):
    before = {replica: registry_started_at(replica) for replica in REPLICAS}
    load = start_load()
    time.sleep(6)
    started = time.monotonic()
    seconds = None
    try:
        replica = fault(client, lb)
        seconds = wait_full_service(lb, client, started, (replica, before[replica]))
        time.sleep(6)  # load on both replicas again
    finally:
        report = stop_load(load)
    record(fault.__name__, report, seconds)
    assert report["pushes"] > 3, report
    assert report["pulls_failed"] == 0, report["errors"]
    assert report["pushes_failed"] == 0, report["errors"]


def storage_unit_stopped_under_load(client, lb, unit, while_gone, settle=0):
    """Stop a unit of the storage host under load, run while_gone(), start the unit again,
    and wait for full service (then settle seconds more). The load's report, the seconds
    until full service, and what while_gone() returned."""
    load = start_load()
    time.sleep(6)
    host_exec("storage", "systemctl stop " + unit)
    result = while_gone()
    host_exec("storage", "systemctl start " + unit)
    started = time.monotonic()
    seconds = None
    try:
        seconds = wait_full_service(lb, client, started)
        time.sleep(settle)
    finally:
        report = stop_load(load)
    return report, seconds, result


def test_the_load_fails_clearly_while_the_store_is_gone_and_recovers(client, lb):
    report, seconds = storage_unit_stopped_under_load(
        client, lb, "seaweedfs", lambda: time.sleep(15)
    )[:2]
    record("store_stopped_15s", report, seconds)
    # While the store was gone, requests failed with an answer (a 5xx), not a hang or a bad
    # byte; and some did fail: a load that met no outage proves nothing.
    assert report["requests_failed"] > 0, report
    assert any(re.search(r": 5\d\d ", error) for error in report["errors"]), report["errors"]
    assert all("timed out" not in error.lower() for error in report["errors"]), report["errors"]
    assert all("came back" not in error for error in report["errors"]), report["errors"]
    # And then, without a converge, the load runs clean again.
    after = start_load()
    time.sleep(10)
    again = stop_load(after)
    record("after_store_returned", again, 0)
    assert again["pushes"] > 3, again
    assert again["requests_failed"] == 0, again["errors"]  # every attempt, not the last
    assert again["pushes_failed"] == 0, again["errors"]
    assert again["pulls_failed"] == 0, again["errors"]


def changes():
    """A converge that changes users, the certificates and a config value."""
    return json.dumps(
        {
            "registry_server_users": [
                {"name": "pusher", "password": "molecule-pusher-pw"},
                {"name": "puller", "password": "molecule-puller-pw"},
                {"name": "newcomer", "password": "molecule-newcomer-pw"},
            ],
            "registry_server_tls_subject_alt_names": ["lb", container_address("lb")],
            "registry_server_log_level": "warn",
        }
    )


# Where the two cut-off runs are killed: as the first replica's restart begins (drained,
# its files changed), and as the second one's begins (the first done by then).
RESTART = r"^RUNNING HANDLER \[privreg\.registry\.registry_server : Restart registry\]"
KILL_POINTS = ((RESTART,), (r"Drain the replica at the balancers.* - out registry-2\]", RESTART))


def test_the_load_goes_on_through_interrupted_converges_that_change_the_replicas(client, lb):
    """Faults 5 and 6 in one: site.yml changing users, the certificates and a config value is
    killed part-way twice, then run to the end (rolling: one replica at a time, drained,
    restarted, back in). That the next run changes nothing is asserted on the next test's
    converge, the same inventory run again: one no-op run of six hosts less in CI."""
    before = {replica: registry_started_at(replica) for replica in REPLICAS}
    load = start_load(max_seconds=900)
    time.sleep(6)
    started = time.monotonic()
    kills = []
    try:
        for patterns in KILL_POINTS:
            run = start_playbook("-e", changes(), own_session=True)
            kills.append(kill_playbook_at(run, *patterns)[0])
        completed = time.monotonic()
        rc, output = converge("-e", changes())
        seconds = time.monotonic() - started
        rolling_seconds = time.monotonic() - completed
    finally:
        report = stop_load(load)
    record("interrupted_converges_changing_users_certificate_config", report, seconds)
    RESULTS["interrupted_converges_changing_users_certificate_config"].update(
        seconds_of_the_run_to_the_end=round(rolling_seconds, 1)
    )
    record_results()
    assert kills == [True, True], "a run ended before it could be killed"
    assert rc == 0, output[-3000:]
    # Every attempt counts (pushes are retried): a drained restart drops no request.
    assert report["requests_failed"] == 0, report["errors"]
    restarted = [r for r in REPLICAS if registry_started_at(r) != before[r]]
    assert restarted == list(REPLICAS)
    assert http(client, "https://%s/v2/" % LB, "newcomer", "molecule-newcomer-pw")["status"] == 200
    assert all(state[0] == "UP" for state in backend_states(lb).values()), backend_states(lb)
    assert report["pushes"] > 3, report
    assert report["pushes_failed"] == 0, report["errors"]
    assert report["pulls_failed"] == 0, report["errors"]


VIP_NAME = "registry-vip"


def virtual_ip():
    """registry_lb_virtual_ip as the balancers' keepalived holds it (molecule.yml sets it)."""
    conf = test_host("lb").file("/etc/keepalived/keepalived.conf").content_string
    return re.search(r"virtual_ipaddress \{\s*([0-9.]+)/", conf).group(1)


def virtual_ip_holders(address):
    return [
        balancer
        for balancer in ("lb", "lb-2")
        if " %s/" % address in test_host(balancer).check_output("ip -o -4 addr show")
    ]


def test_the_virtual_ip_moves_when_its_balancer_fails(client):
    address = virtual_ip()
    holders = virtual_ip_holders(address)
    assert len(holders) == 1, holders
    holder = holders[0]
    other = "lb-2" if holder == "lb" else "lb"
    # Clients know the shared address by a name of its own (on the balancers' certificate).
    host_exec(
        "client-a",
        "grep -q ' %s$' /etc/hosts || echo '%s %s' >> /etc/hosts" % (VIP_NAME, address, VIP_NAME),
    )
    vip_url = "https://%s:5000/v2/" % VIP_NAME
    assert http(client, vip_url)["status"] == 401
    load = start_load(address=VIP_NAME + ":5000")
    time.sleep(6)
    host_exec(holder, "systemctl stop haproxy")
    started = time.monotonic()
    seconds = None
    try:
        while time.monotonic() - started < 60:
            if virtual_ip_holders(address) == [other] and http(client, vip_url)["status"] == 401:
                seconds = time.monotonic() - started
                break
            time.sleep(0.2)
        time.sleep(6)
    finally:
        report = stop_load(load)
        host_exec(holder, "systemctl start haproxy")
    record("balancer_holding_the_virtual_ip_failed", report, seconds)
    assert seconds is not None, "the address did not move to %s" % other
    assert report["pushes"] > 3, report
    assert report["pulls"] > 3, report
    assert report["pushes_failed"] == 0, report["errors"]
    assert report["pulls_failed"] == 0, report["errors"]
    # The balancer came back, and the address stays where it is (no second move), watched
    # for three times keepalived's advertisement interval and more, not once after 4 s.
    watched = []
    for _poll in range(20):
        watched.append(virtual_ip_holders(address))
        time.sleep(0.5)
    assert all(holders == [other] for holders in watched), watched


# molecule.yml's registry_cache_password, after molecule's $$ -> $.
REDIS_PASSWORD = "Cache $pw \"q\" \\ 'x' #ünï-0123456789"


def redis_cli(*args):
    """redis-cli on the cache host, with the replicas' password."""
    return subprocess.check_output(
        ["docker", "exec", "-e", "REDISCLI_AUTH=" + REDIS_PASSWORD, container_name("storage")]
        + ["redis-cli", "--no-auth-warning", *args],
        text=True,
    ).strip()


def cached(blob):
    """The cache's keys that name this blob digest."""
    return redis_cli("--scan", "--pattern", "*" + blob.split(":", 1)[1] + "*").split()


def test_the_load_goes_on_while_the_cache_is_gone(client, lb):
    # The replicas use the shared cache: what the load loops pushed has descriptors there.
    assert cached(PUSHED[-1]["blobs"][0]), redis_cli("DBSIZE")

    def while_gone():
        time.sleep(5)
        # Deletes clear the cache first: without it they are refused (500), nothing deleted.
        refused = for_each_image(client, "delete", PUSHED[:1])
        time.sleep(10)
        return refused

    # settle: pushes that fill the emptied cache again.
    report, seconds, refused_delete = storage_unit_stopped_under_load(
        client, lb, "redis-server", while_gone, settle=6
    )
    record("cache_stopped_15s", report, seconds)
    assert report["requests_failed"] == 0, report["errors"]  # the cache is only a cache
    assert len(refused_delete) == 1, refused_delete
    assert "DELETE manifest: 500" in refused_delete[0], refused_delete
    assert for_each_image(client, "check", PUSHED[:1]) == []
    assert report["pushes"] > 3, report
    assert report["pulls_failed"] == 0, report["errors"]
    assert report["pushes_failed"] == 0, report["errors"]
    assert cached(PUSHED[-1]["blobs"][0]), redis_cli("DBSIZE")


def for_each_image(client, action, images):
    """load_loop.py's check, delete or gone on the client for images; the failures."""
    put_file("/root/images.json", json.dumps(images).encode())
    return json.loads(
        client.check_output(
            "python3 /root/load_loop.py %s https://%s %s pusher molecule-pusher-pw "
            "/root/images.json",
            action,
            LB,
            CA,
        )
    )


def gc_lock_holder(replica):
    status = subprocess.check_output(
        ["docker", "exec", container_name(replica), "registry-gc", "status"], text=True
    )
    lock = json.loads(status.strip().splitlines()[-1])["lock"]
    return lock["holder"] if lock else None


PROFILED = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
# profile_tasks' line under each task's header: the time, and the last task's duration.
TASK_TIME = re.compile(
    r"^(\w+ \d\d \w+ \d{4}  \d\d:\d\d:\d\d [+-]\d{4}) \((\d+):(\d\d):(\d\d(?:\.\d+)?)\)"
)


def lock_task_timing(output):
    """(seconds, when it ended) of a profiled run's first task that takes the maintenance
    lock: the line under the next task's header has both."""
    lines = output.splitlines()
    start = next(
        index
        for index, line in enumerate(lines)
        if line.startswith("TASK [") and "Take the maintenance lock" in line
    )
    times = [TASK_TIME.match(line) for line in lines[start + 1 :]]
    stamp, hours, minutes, seconds = [match for match in times if match][1].groups()
    ended = datetime.strptime(stamp, "%A %d %B %Y  %H:%M:%S %z").timestamp()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds), ended


def test_gc_under_load_collects_once_with_every_replica_frozen(client, lb):
    """gc.yml while the load loop runs; a second gc.yml is refused and a converge waits
    (shown by its lock task's time), then runs and changes nothing: the last test's
    inventory again, after its rolling run."""
    doomed = PUSHED[:10]
    del PUSHED[:10]
    # Pulled first, so the shared cache (emptied when Redis restarted) holds descriptors of
    # the blobs about to be swept: left there, they would say "exists" for blobs that are gone.
    assert for_each_image(client, "check", doomed) == []
    assert for_each_image(client, "delete", doomed) == []
    assert all(cached(blob) for image in doomed for blob in image["blobs"])
    load = start_load()
    time.sleep(6)
    started = time.monotonic()
    gc = start_playbook(playbook="playbooks/gc.yml")
    seconds = None
    try:
        deadline = time.monotonic() + 120
        while not all((gc_lock_holder(r) or "").startswith("gc-") for r in REPLICAS):
            assert time.monotonic() < deadline, "gc.yml never held both replicas' locks"
            assert gc.poll() is None, finish_playbook(gc)[1][-3000:]
            time.sleep(0.5)
        second_rc, second = converge(
            "-e", "registry_maintenance_gc_lock_wait=0", playbook="playbooks/gc.yml"
        )
        # The last test's inventory, its task times shown (profile_tasks).
        during = start_playbook("-e", changes(), env=PROFILED)
        gc_rc, gc_output = finish_playbook(gc)
        gc_ended = time.time()
        seconds = time.monotonic() - started
        converge_rc, converge_output = finish_playbook(during)
    finally:
        report = stop_load(load)
    record("gc_under_load_with_a_second_gc_and_a_converge", report, seconds)
    assert report["pulls"] > 3, report  # a load that pulled nothing proves nothing
    assert second_rc != 0
    assert re.search(r"the lock is held by gc-[a-z0-9]{10} ", second), second[-3000:]
    assert gc_rc == 0, gc_output[-3000:]
    assert converge_rc == 0, converge_output[-3000:]
    # The converge waited for the collection: its lock task took time and ended only as
    # the collection did (the collection's run ends a moment after it gives the lock back).
    waited, lock_ended = lock_task_timing(converge_output)
    assert waited >= 5, converge_output[-3000:]
    assert lock_ended >= gc_ended - 3, (lock_ended, gc_ended)
    # After the collection every replica is back as the converge wants it: no change, no
    # restart (a restart would drop the load's pulls, asserted below).
    changed = {host: counts["changed"] for host, counts in recap(converge_output).items()}
    assert set(changed.values()) == {0}, changed
    freed = re.search(r"Freed (\d+) blobs", gc_output)
    assert freed, gc_output[-3000:]
    assert int(freed.group(1)) >= 2 * len(doomed)
    assert for_each_image(client, "gone", doomed) == []
    assert [blob for image in doomed for blob in image["blobs"] if cached(blob)] == []
    RESULTS["gc_under_load_with_a_second_gc_and_a_converge"].update(
        blobs_freed=int(freed.group(1)),
        bytes_of_the_deleted_images=sum(sum(image["sizes"]) for image in doomed),
    )
    record_results()
    assert report["pulls_failed"] == 0, report["errors"]
    # Pushes meet a read-only registry while it is frozen: 405, never a lost byte.
    assert all("405" in error for error in report["errors"]), report["errors"]


def newest_balancer_worker(lb_host):
    return lb_host.check_output(
        "pgrep --newest --parent $(systemctl show --property MainPID --value haproxy)"
    )


def test_the_reload_a_cut_off_run_owed_is_made_by_the_next_run(lb):
    """haproxy.cfg newer than HAProxy's workers (a run died between writing it and the
    reload): the next run reloads, though it finds the file as it wants it; the run after
    that changes nothing."""
    worker = newest_balancer_worker(lb)
    host_exec("lb", "touch /etc/haproxy/haproxy.cfg")
    # Both balancers: they share the virtual IP, so preflight wants them in one play.
    rc, output = converge("--limit", "registry_lb", "-e", changes())
    assert rc == 0, output[-3000:]
    assert recap(output)["lb"]["changed"] > 0, recap(output)
    assert recap(output)["lb-2"]["changed"] == 0, recap(output)
    assert newest_balancer_worker(lb) != worker
    rc, output = converge("--limit", "registry_lb", "-e", changes())
    assert rc == 0, output[-3000:]
    assert recap(output)["lb"]["changed"] == 0, recap(output)


def test_a_new_cache_password_shows_in_no_diff(inventory):
    """--check --diff of a new cache password: the run would change the password's file,
    and neither the old nor the new password reaches the output in any rendering (the
    settings' own file used to hold it, and its diff printed both)."""
    old = inventory.get_variables("storage")["registry_cache_password"]
    new = "New cache $pw 'q' \"d\" \\ #ünï-5555"
    rc, output = converge(
        "--limit", "registry_cache", "--check", "--diff",
        "-e", json.dumps({"registry_cache_password": new}),
    )  # fmt: skip
    assert rc == 0, output[-3000:]
    assert recap(output)["storage"]["changed"] > 0, recap(output)
    assert "TASK [privreg.registry.registry_cache : Keep the cache's password]" in output
    assert leaked([old, new], output) == []


def test_no_image_pushed_under_load_was_lost(client):
    """Every image any load loop pushed pulls back byte for byte, once everything is back."""
    assert len(PUSHED) > 10
    lost = for_each_image(client, "check", PUSHED)
    RESULTS["final_check"] = {"images": len(PUSHED), "lost": len(lost)}
    record_results()
    assert lost == []
