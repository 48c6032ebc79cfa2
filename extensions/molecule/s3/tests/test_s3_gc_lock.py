"""Collections and converges share one maintenance lock: a converge refuses (or waits for)
a frozen registry, and registry-gc refuses (or waits for) a running converge. Real runs of
site.yml and registry-gc against the real registry on S3."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest
from registry_helpers import (
    SERVER_STATE,
    finish_playbook,
    line_independent,
    push_unique_image,
    start_playbook,
)

pytestmark = line_independent  # the lock is the same on both lines

GC = "/usr/local/sbin/registry-gc"


def gc_report(host, command):
    result = host.run(command)
    return result.rc, json.loads(result.stdout.strip().splitlines()[-1])


def site_yml(*extra):
    """site.yml on the registry host only, started as a process (json callback)."""
    return start_playbook(
        "--limit", "registry", *extra, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    )


def finish(process):
    """(rc, the json callback's report as text)."""
    return finish_playbook(process, output="stdout")


def task_result(output, name_start):
    """The registry host's result and duration (s) of the task so named."""
    report = json.loads(output)
    for play in report["plays"]:
        for task in play["tasks"]:
            if name_start in task["task"]["name"] and "registry" in task["hosts"]:
                duration = task["task"]["duration"]
                seconds = _stamp(duration["end"]) - _stamp(duration["start"])
                return task["hosts"]["registry"], seconds
    raise AssertionError("no task %r in the run" % name_start)


def _stamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def thawed(server):
    yield
    server.run("systemctl stop privreg-test-thaw.timer privreg-test-thaw.service")
    server.check_output(GC + " thaw")
    assert gc_report(server, GC + " status")[1]["read_only"] is False


def test_a_converge_refuses_a_frozen_registry_and_changes_nothing(server, thawed):
    server.check_output(GC + " freeze")
    before = server.check_output(SERVER_STATE)
    # A change that would rewrite config.yml and restart the registry.
    rc, output = finish(
        site_yml(
            "-e",
            '{"registry_maintenance_converge_lock_wait": 0, "registry_server_drain_timeout": 29}',
        )
    )
    assert rc != 0
    assert "read-only for garbage collection" in output
    assert "registry_maintenance_converge_lock_wait" in output
    assert server.check_output(SERVER_STATE) == before
    assert gc_report(server, GC + " status")[1]["read_only"] is True


def test_a_converge_waits_for_the_collection_and_then_runs(server, client_a, registry, thawed):
    server.check_output(GC + " freeze")
    run = site_yml()
    # The collection ends 8 s after the converge began to wait for its lock. (A thaw at a
    # fixed time after the start flaked: a slow run reached the lock late and waited less.)
    deadline = time.monotonic() + 300
    # [r]: the shell that runs pgrep holds the pattern in its own command line.
    while server.run("pgrep -f '[r]egistryctl.* lock --holder converge'").rc != 0:
        assert run.poll() is None, finish(run)[1][-3000:]
        assert time.monotonic() < deadline, "the converge never asked for the lock"
        time.sleep(0.5)
    time.sleep(8)
    server.check_output(GC + " thaw")
    rc, output = finish(run)
    assert rc == 0, output[-3000:]
    lock, seconds = task_result(output, "Take the maintenance lock")
    assert lock["rc"] == 0
    assert seconds >= 7, "the converge did not wait for the thaw (%.1f s)" % seconds
    status = gc_report(server, GC + " status")[1]
    assert status["read_only"] is False
    assert status["lock"] is None  # given back at the end of the run
    assert re.fullmatch(r"[0-9a-f]{64}", status["container"]), status
    push_unique_image(client_a, registry + "/s3/after-wait")


def test_a_collection_waits_for_a_running_converge(server, client_a, registry):
    converge = site_yml()
    try:
        deadline = time.monotonic() + 180
        while True:
            lock = gc_report(server, GC + " status")[1]["lock"]
            if lock and lock["holder"] == "converge":
                break
            assert converge.poll() is None, "the converge ended before it was seen holding the lock"
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # Not now: refused outright, and the registry stays writable.
        rc, refused = gc_report(server, GC + " run --wait 0")
        assert rc == 1
        assert "held by converge" in refused["error"]
        assert refused["read_only"] is False
        # Waiting: the collection runs once the converge has given the lock back.
        rc, collected = gc_report(server, GC + " run --wait 300")
        converge_rc, output = finish(converge)
    finally:
        if converge.poll() is None:
            converge.kill()
    assert converge_rc == 0, output[-3000:]
    assert rc == 0, collected
    assert collected["read_only"] is False
    assert "blobs_marked" in collected
    push_unique_image(client_a, registry + "/s3/after-collection")


def test_a_freeze_that_fails_half_way_switches_back(server, client_a, registry):
    settings = json.loads(server.check_output("cat /etc/privreg/maintenance.json"))
    # The registry is recreated read-only, but registry-gc cannot confirm it (it looks for
    # a config file name the container does not use): a freeze that fails half-way.
    broken = dict(settings, readonly_config="/etc/docker/registry/not-this.yml")
    server.check_output("umask 077; printf '%%s' %s > /root/gc-broken.json", json.dumps(broken))
    rc, report = gc_report(server, GC + " freeze --config /root/gc-broken.json")
    assert rc == 1
    assert report["error"] == (
        "the registry did not switch to read-only (switched back to writable)"
    )
    assert gc_report(server, GC + " status")[1]["read_only"] is False
    push_unique_image(client_a, registry + "/s3/after-failed-freeze")
