"""registryctl's maintenance lock and garbage collection (roles/host_control/files/registryctl.py).

The lease is exercised with real flock()s and real processes. The registry's state is
replaced by a scripted sequence only where a race has to happen at an exact moment (the
Molecule scenario s3 runs the same code against a real registry).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.privreg.registry.tests.unit.roles.role_files import ROOT, load_role_file

GC_FILE = ROOT / "roles" / "host_control" / "files" / "registryctl.py"
registry_gc = load_role_file("host_control", "registryctl")


@pytest.fixture(autouse=True)
def lock_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_gc, "LOCK_FILE", str(tmp_path / "lock" / "maintenance.lock"))
    monkeypatch.setattr(registry_gc, "CONFIG", {})  # no registry: never read-only
    return tmp_path / "lock" / "maintenance.lock"


def _start_holder(lock_file, hold_seconds):
    """Another process that takes the collection's lease, holds it, gives it back, exits."""
    code = textwrap.dedent(
        """
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("gc", sys.argv[1])
        gc = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gc)
        gc.LOCK_FILE = sys.argv[2]
        assert gc.acquire("collection", 0, own_process=True) is None
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
        gc.release("collection")
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(GC_FILE), str(lock_file), str(hold_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_converge_lease_blocks_a_collection_until_given_back():
    assert registry_gc.acquire("converge", 0, ttl=60) is None
    blocker = registry_gc.acquire("collection", 0, own_process=True)
    assert blocker is not None
    assert blocker.startswith("the lock is held by converge")
    assert registry_gc.release("converge") is True
    assert registry_gc.acquire("collection", 0, own_process=True) is None


def test_a_collection_blocks_a_converge_and_another_collection(lock_in_tmp):
    holder = _start_holder(lock_in_tmp, 30)
    try:
        converge = registry_gc.acquire("converge", 0, ttl=60)
        assert "held by collection" in converge
        assert "pid %d" % holder.pid in converge
        assert "held by collection" in registry_gc.acquire("collection", 0, own_process=True)
    finally:
        holder.kill()
        holder.wait()


def test_a_converge_waits_for_a_collection_to_end(lock_in_tmp):
    holder = _start_holder(lock_in_tmp, 2)
    started = time.monotonic()
    assert registry_gc.acquire("converge", 20, ttl=60) is None
    waited = time.monotonic() - started
    holder.wait()
    assert 1.0 < waited < 10
    assert registry_gc.status_of_lock()["holder"] == "converge"


def test_a_killed_collection_leaves_no_lease_behind(lock_in_tmp):
    holder = _start_holder(lock_in_tmp, 30)
    holder.kill()
    holder.wait()
    assert registry_gc.acquire("converge", 0, ttl=60) is None


def test_a_lease_lapses_after_its_ttl():
    assert registry_gc.acquire("converge", 0, ttl=1) is None
    assert registry_gc.acquire("collection", 0, own_process=True) is not None
    time.sleep(1.2)
    assert registry_gc.status_of_lock() is None
    assert registry_gc.acquire("collection", 0, own_process=True) is None


def test_a_re_run_renews_its_own_lease():
    assert registry_gc.acquire("converge", 0, ttl=60) is None
    assert registry_gc.acquire("converge", 0, ttl=60) is None
    assert registry_gc.release("acme") is False  # not the holder: nothing changes
    assert registry_gc.status_of_lock()["holder"] == "converge"


def test_two_converges_at_once_do_not_share_the_lock():
    """Each converge is a run of its own: the second waits, and its unlock frees nothing."""
    first = registry_gc.acquire("converge", 0, ttl=60, run="ra1", controller="ops-pc:4242")
    assert first is None
    second = registry_gc.acquire("converge", 0, ttl=60, run="rb2", controller="ci:77")
    assert second == "the lock is held by " + registry_gc.describe(registry_gc.status_of_lock())
    assert "converge (since " in second
    assert "run ra1 from ops-pc:4242" in second
    assert registry_gc.release("converge", "rb2") is False
    assert registry_gc.status_of_lock()["run"] == "ra1"
    # The same run renews its lease (the lock taken again later in the same run).
    assert registry_gc.acquire("converge", 0, ttl=60, run="ra1") is None
    assert registry_gc.release("converge", "ra1") is True
    assert registry_gc.acquire("converge", 0, ttl=60, run="rb2") is None


def test_a_run_takes_over_only_the_dead_run_it_names():
    assert registry_gc.acquire("converge", 0, ttl=60, run="rdead", controller="ops-pc:4242") is None
    assert registry_gc.acquire("converge", 0, ttl=60, run="rnew", take_over="rother") is not None
    assert registry_gc.acquire("converge", 0, ttl=60, run="rnew", take_over="rdead") is None
    lease = registry_gc.status_of_lock()
    assert (lease["run"], lease["controller"]) == ("rnew", None)
    # Taking over a converge's lease never takes a collection's.
    registry_gc.release("converge", "rnew")
    assert registry_gc.acquire("gc-abc", 0, ttl=60) is None
    assert registry_gc.acquire("converge", 0, ttl=60, run="rx", take_over="gc-abc") is not None


def test_a_lease_of_an_earlier_layout_or_by_hand_is_still_freed():
    """A lease without a run (registryctl before runs) is renewed by any converge, and an
    operator's unlock without --run frees whichever run holds it."""
    assert registry_gc.acquire("converge", 0, ttl=60) is None
    assert registry_gc.acquire("converge", 0, ttl=60, run="ra1") is None
    assert registry_gc.release("converge") is True
    assert registry_gc.status_of_lock() is None


def test_a_converge_is_refused_while_the_registry_is_read_only(monkeypatch):
    monkeypatch.setattr(registry_gc, "frozen", lambda: True)
    blocker = registry_gc.acquire("converge", 0, ttl=60, while_frozen=False)
    assert "read-only for garbage collection" in blocker
    assert "registry-gc thaw" in blocker
    assert registry_gc.status_of_lock() is None
    # registry-gc itself works on a frozen registry (collect, thaw).
    assert registry_gc.acquire("collection", 0, own_process=True) is None


def _scripted_state(monkeypatch, states):
    states = list(states)
    monkeypatch.setattr(registry_gc, "container_state", lambda: states.pop(0))
    monkeypatch.setattr(
        registry_gc,
        "garbage_collect",
        lambda dry_run, untagged: {
            "dry_run": dry_run,
            "blobs_marked": 1,
            "blobs_deleted": 0,
            "manifests_deleted": 0,
            "digests": [],
        },
    )
    registry_gc.CONFIG["storage_driver"] = "s3"
    return states


@pytest.mark.parametrize(
    ("states", "when"),
    [
        ([("c1", True), ("c1", False)], "during the dry pass"),
        ([("c1", True), ("c2", True)], "during the dry pass"),  # restarted: a new container
        ([("c1", True), ("c1", True), ("c1", False)], "during the sweep"),
    ],
)
def test_a_registry_that_stops_being_read_only_fails_the_collection(monkeypatch, states, when):
    _scripted_state(monkeypatch, states)
    with pytest.raises(registry_gc.GCError, match="did not stay read-only " + when):
        registry_gc.collect(False, False, True)


def test_a_registry_that_stays_read_only_is_collected(monkeypatch):
    left = _scripted_state(monkeypatch, [("c1", True)] * 3)
    report = registry_gc.collect(False, False, True)
    assert report["blobs_marked"] == 1
    assert left == []


def test_a_freeze_that_fails_half_way_switches_back(monkeypatch):
    calls = []
    monkeypatch.setattr(registry_gc, "compose", lambda *files: calls.append(files))
    answers = [registry_gc.GCError("the registry did not answer"), None]

    def wait_ready():
        answer = answers.pop(0)
        if answer:
            raise answer

    monkeypatch.setattr(registry_gc, "wait_ready", wait_ready)
    with pytest.raises(registry_gc.GCError, match=r"did not answer \(switched back to writable\)"):
        registry_gc.freeze()
    assert calls == [("compose.yml", "compose.readonly.yml"), ("compose.yml",)]


@pytest.mark.parametrize(
    "argv",
    [
        ["lock", "--ttl", "60"],  # no holder
        ["lock", "--holder", "Converge; rm", "--ttl", "60"],
        ["lock", "--holder", "collection", "--ttl", "60"],
        ["lock", "--holder", "converge"],  # no ttl
        ["run", "--under", "gc-0123456789"],  # run takes its own lease
        ["freeze", "--under", "collection"],
        ["thaw", "--under", "Replicas GC"],
        ["lock", "--holder", "converge", "--ttl", "60", "--run", "R1; rm"],
        ["lock", "--holder", "converge", "--ttl", "60", "--take-over", "../x"],
        ["lock", "--holder", "converge", "--ttl", "60", "--controller", "host;rm:1"],
        ["lock", "--holder", "converge", "--ttl", "60", "--controller", "host:pid"],
        ["unlock", "--holder", "converge", "--run", "$(x)"],
    ],
)
def test_bad_lock_arguments_are_refused(monkeypatch, argv):
    monkeypatch.setattr(sys, "argv", ["registry-gc", *argv])
    with pytest.raises(SystemExit) as exc:
        registry_gc.main()
    assert exc.value.code == 2
    assert registry_gc.status_of_lock() is None


def _main(monkeypatch, capsys, *argv):
    """registry-gc's main() with argv; (exit code, its JSON report)."""
    monkeypatch.setattr(sys, "argv", ["registry-gc", *argv])
    code = registry_gc.main()
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def replica_config(tmp_path, monkeypatch):
    """gc.json of one of two replicas; compose must never run unless a test allows it."""
    config = tmp_path / "gc.json"
    config.write_text(
        json.dumps(
            {
                "replicas": 2,
                "storage_driver": "s3",
                "lock_wait": 0,
                "major_version": 3,
                "delete_untagged": False,
                "dry_run_first": True,
            }
        )
    )
    monkeypatch.setattr(registry_gc, "compose", lambda *files: pytest.fail("compose ran"))
    return str(config)


@pytest.mark.parametrize("command", ["run", "freeze", "collect", "thaw"])
def test_a_replica_is_not_collected_on_its_own(monkeypatch, capsys, replica_config, command):
    code, report = _main(monkeypatch, capsys, command, "--config", replica_config)
    assert code == 1
    assert "one of 2 replicas on its own" in report["error"]
    assert registry_gc.status_of_lock() is None


def test_a_step_under_a_lease_needs_that_lease(monkeypatch, capsys, replica_config):
    code, report = _main(
        monkeypatch, capsys, "freeze", "--under", "gc-0123456789", "--config", replica_config
    )
    assert code == 1
    assert report["error"] == "the lock is not held by gc-0123456789 (free)"
    assert registry_gc.acquire("converge", 0, ttl=60) is None
    code, report = _main(
        monkeypatch, capsys, "freeze", "--under", "gc-0123456789", "--config", replica_config
    )
    assert code == 1
    assert report["error"].startswith("the lock is not held by gc-0123456789 (held by converge")


def test_a_collection_under_a_lease_keeps_the_lease(monkeypatch, capsys, replica_config):
    assert registry_gc.acquire("gc-0123456789", 0, ttl=60) is None
    _scripted_state(monkeypatch, [("c1", True)] * 4)
    code, report = _main(
        monkeypatch, capsys, "collect", "--under", "gc-0123456789", "--config", replica_config
    )
    assert code == 0, report
    assert report["container"] == "c1"
    assert report["read_only"] is True
    # The play gives it back (unlock) once every replica is thawed.
    assert registry_gc.status_of_lock()["holder"] == "gc-0123456789"


class _RedisListener:
    """A listening socket that answers each RESP command with the next scripted reply and
    records the commands, as a Redis server would see them."""

    def __init__(self, replies):
        import socket
        import threading

        self.replies = list(replies)
        self.commands = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        connection = self.server.accept()[0]
        reader = connection.makefile("rb")
        with connection:
            while self.replies:
                header = reader.readline()
                if not header:
                    return
                args = []
                while len(args) < int(header[1:]):
                    length = int(reader.readline()[1:])
                    args.append(reader.read(length + 2)[:-2].decode())
                self.commands.append(args)
                connection.sendall(self.replies.pop(0))


def _redis_config(monkeypatch, listener, password):
    monkeypatch.setattr(
        registry_gc,
        "CONFIG",
        {"container": "registry", "redis": {"host": "127.0.0.1", "port": listener.port, "db": 3}},
    )
    monkeypatch.setattr(registry_gc, "container_env", lambda name: password)


def test_a_sweep_empties_the_redis_cache_database(monkeypatch):
    listener = _RedisListener([b"+OK\r\n", b"+OK\r\n", b"+OK\r\n"])
    _redis_config(monkeypatch, listener, "pw with spaces $x")
    assert registry_gc.flush_cache() is True
    listener.thread.join(5)
    assert listener.commands == [["AUTH", "pw with spaces $x"], ["SELECT", "3"], ["FLUSHDB"]]


def test_a_refused_flush_fails_without_showing_the_password(monkeypatch):
    listener = _RedisListener([b"-WRONGPASS invalid username-password pair\r\n"])
    _redis_config(monkeypatch, listener, "the-secret-password")
    with pytest.raises(registry_gc.GCError) as refused:
        registry_gc.flush_cache()
    assert "WRONGPASS" in str(refused.value)
    assert "FLUSHDB on its database 3" in str(refused.value)
    assert "the-secret-password" not in str(refused.value)


def test_no_redis_cache_means_nothing_to_empty(monkeypatch):
    monkeypatch.setattr(registry_gc, "CONFIG", {"container": "registry"})
    assert registry_gc.flush_cache() is None
