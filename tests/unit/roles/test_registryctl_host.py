"""registryctl's restarts, hand-offs and checks (roles/host_control/files/registryctl.py).

The iptables rules that hold connections are kept by a stand-in `iptables` on PATH that
records them in a file, as the kernel's tables would; everything else is real: processes
killed by real signals, real files and their times, a real deploy hook run as certbot runs
it.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.privreg.registry.tests.unit.roles.role_files import ROOT, load_role_file

CTL_FILE = ROOT / "roles" / "host_control" / "files" / "registryctl.py"
ctl = load_role_file("host_control", "registryctl")

# A stand-in for iptables: the rules of each chain in a JSON file, listed (-S), inserted
# (-I) and deleted (-D, one copy per call, exit 1 when there is none) as iptables does.
FAKE_IPTABLES = textwrap.dedent(
    """\
    #!%s
    import json, os, shlex, sys
    path = os.environ["FAKE_IPTABLES_STATE"]
    with open(path) as handle:
        chains = json.load(handle)
    args = [a for a in sys.argv[1:] if a != "-w"]
    action, chain, rule = args[0], args[1], args[2:]
    if chain not in chains:
        sys.exit(1)
    if action == "-S":
        print("-N " + chain)
        for r in chains[chain]:
            print(" ".join(["-A", chain] + [shlex.quote(w) for w in r]))
        sys.exit(0)
    if action == "-I":
        chains[chain].insert(0, rule)
    elif action == "-D":
        if rule not in chains[chain]:
            sys.exit(1)
        chains[chain].remove(rule)
    with open(path, "w") as handle:
        json.dump(chains, handle)
    """
    % sys.executable
)


@pytest.fixture
def iptables(tmp_path, monkeypatch):
    """The stand-in on PATH; returns a function that reads the rules of every chain."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "iptables"
    program.write_text(FAKE_IPTABLES)
    program.chmod(0o755)
    state = tmp_path / "iptables.json"
    state.write_text(json.dumps({"INPUT": [], "DOCKER-USER": []}))
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_IPTABLES_STATE", str(state))

    def rules():
        return json.loads(state.read_text())

    rules.state = state
    return rules


def tagged(rules):
    return [
        (chain, r)
        for chain, chain_rules in rules().items()
        for r in chain_rules
        if ctl.HOLD_TAG in r
    ]


def test_a_container_restart_holds_both_paths_and_releases_them(iptables):
    held = []
    with ctl.held_connections(ctl.hold_rules(5000, container=True)):
        held = tagged(iptables)
    assert sorted(chain for chain, _rule in held) == ["DOCKER-USER", "INPUT"]
    assert all(rule[-2:] == ["-j", "DROP"] and "5000" in rule for _chain, rule in held)
    assert tagged(iptables) == []


def test_a_host_service_restart_leaves_loopback_open(iptables):
    with ctl.held_connections(ctl.hold_rules(5443, container=False)):
        ((chain, rule),) = tagged(iptables)
    assert chain == "INPUT"
    assert rule[:3] == ["!", "-i", "lo"]
    assert tagged(iptables) == []


def test_without_a_docker_user_chain_a_container_restart_holds_nothing(iptables):
    iptables.state.write_text(json.dumps({"INPUT": []}))
    assert ctl.hold_rules(5000, container=True) == []


def test_an_error_inside_the_hold_still_releases_it(iptables):
    with (
        pytest.raises(ctl.ControlError),
        ctl.held_connections(ctl.hold_rules(5000, container=True)),
    ):
        raise ctl.ControlError("the restart failed")
    assert tagged(iptables) == []


def test_release_holds_removes_every_copy_and_nothing_else(iptables):
    other = ["-p", "tcp", "--dport", "22", "-j", "ACCEPT"]
    rule = [
        "-p",
        "tcp",
        "--syn",
        "--dport",
        "5000",
        "-m",
        "comment",
        "--comment",
        ctl.HOLD_TAG,
        "-j",
        "DROP",
    ]
    iptables.state.write_text(json.dumps({"INPUT": [rule, other, rule], "DOCKER-USER": [rule]}))
    assert ctl.release_holds() == 3
    assert iptables() == {"INPUT": [other], "DOCKER-USER": []}
    assert ctl.release_holds() == 0


def test_no_iptables_means_no_holds_to_release(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there: no iptables at all
    assert ctl.release_holds() == 0
    assert ctl.chain_exists("DOCKER-USER") is False


def _holding_child(container):
    """Another process that holds connections (as a restart does) until it is stopped."""
    code = textwrap.dedent(
        """
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("ctl", sys.argv[1])
        ctl = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ctl)
        with ctl.held_connections(ctl.hold_rules(5000, container=sys.argv[2] == "container")):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    kind = "container" if container else "service"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(CTL_FILE), kind], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_a_restart_killed_part_way_leaves_no_hold(iptables, signum):
    """The review's finding: a restart stopped by a signal (the ACME renewal's unit stopped
    during its deploy hook) kept its DROP rule, and new connections were dropped for good."""
    process = _holding_child(container=True)
    assert len(tagged(iptables)) == 2
    process.send_signal(signum)
    assert process.wait(10) != 0
    assert tagged(iptables) == []


def test_a_sigkilled_restart_leaves_its_hold_for_release_holds(iptables):
    """SIGKILL cannot be caught: the rule stays, and the next converge's release-holds (under
    the maintenance lock) is what removes it."""
    process = _holding_child(container=False)
    process.kill()
    process.wait(10)
    assert len(tagged(iptables)) == 1
    assert ctl.release_holds() == 1
    assert tagged(iptables) == []


def test_signal_handlers_are_put_back_after_a_hold(iptables):
    before = signal.getsignal(signal.SIGTERM)
    with ctl.held_connections(ctl.hold_rules(5000, container=False)):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


# --- what started before its files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:01Z", 10**9),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T00:00:01.123456789Z", 1_123_456_789),
        ("1970-01-01T01:00:01.000000001+01:00", 1_000_000_001),
    ],
)
def test_docker_start_times_are_read_to_the_nanosecond(text, expected):
    assert ctl._rfc3339_ns(text) == expected


def test_only_files_changed_after_the_start_are_stale(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text("x")
    new.write_text("y")
    started = 1_700_000_000 * 10**9
    os.utime(old, ns=(started - 1, started - 1))
    os.utime(new, ns=(started + 1, started + 1))
    missing = tmp_path / "missing"
    assert ctl.newer_files(started, [str(old), str(new), str(missing)]) == [str(new)]


def test_the_newest_process_of_a_unit_is_found_in_proc(monkeypatch):
    """This test's own process and a child of it stand for HAProxy's master and newest
    worker: the start found is the child's, within a tick of when it began."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        began = time.time()
        monkeypatch.setattr(
            ctl.subprocess,
            "run",
            lambda *a, **k: subprocess.CompletedProcess(a, 0, "%d\n" % os.getpid(), ""),
        )
        started = ctl.unit_started_ns("haproxy") / 10**9
    finally:
        child.kill()
        child.wait()
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert began - 2 * tick - 1 < started <= time.time() + tick


# --- TLS hand-offs ----------------------------------------------------------------------------


def test_install_tls_writes_key_and_chain_once_and_privately(tmp_path):
    key, cert, dest = tmp_path / "server.key", tmp_path / "server.crt", tmp_path / "tls.pem"
    key.write_text("KEY\n")
    cert.write_text("CERT\nCHAIN\n")
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert ctl.install_tls(str(key), str(cert), str(dest), me, check=True) == "changed"
    assert not dest.exists()
    assert ctl.install_tls(str(key), str(cert), str(dest), me) == "changed"
    assert dest.read_text() == "KEY\nCERT\nCHAIN\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert ctl.install_tls(str(key), str(cert), str(dest), me) == "unchanged"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.crt", "server.key", "tls.pem"]


def _lineage(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for name, text in (
        ("privkey1.pem", "NEW KEY\n"),
        ("fullchain1.pem", "NEW CHAIN\n"),
        ("cert1.pem", "C\n"),
    ):
        (archive / name).write_text(text)
    live = tmp_path / "live"
    live.mkdir()
    for name in ("privkey", "fullchain", "cert"):
        (live / (name + ".pem")).symlink_to(archive / (name + "1.pem"))
    return live


def _deploy(tmp_path, after, converge=False):
    target = tmp_path / "target"
    target.mkdir(exist_ok=True)
    config = tmp_path / "deploy.json"
    config.write_text(
        json.dumps(
            {
                "install": [
                    {"source": "privkey.pem", "dest": str(target / "server.key"), "mode": "0600"},
                    {"source": "fullchain.pem", "dest": str(target / "server.crt"), "mode": "0644"},
                ],
                "after": after,
            }
        )
    )
    env = dict(os.environ, RENEWED_LINEAGE=str(_lineage(tmp_path)))
    env.pop("PRIVREG_ACME_CONVERGE", None)
    if converge:
        env["PRIVREG_ACME_CONVERGE"] = "1"
    # As certbot runs the hook: the program, by its path, in a process of its own (as root:
    # the installed files belong to root).
    result = subprocess.run(
        [sys.executable, str(CTL_FILE), "acme-deploy", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return result, target


def test_the_deploy_hook_installs_then_runs_the_steps_in_order(tmp_path):
    me = pwd.getpwuid(os.geteuid()).pw_name
    handed = tmp_path / "handed.pem"
    after = [
        ["install-tls", "--key", str(tmp_path / "target" / "server.key"), "--cert",
         str(tmp_path / "target" / "server.crt"), "--dest", str(handed), "--owner", me],
    ]  # fmt: skip
    result, target = _deploy(tmp_path, after)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "server.key").read_text() == "NEW KEY\n"
    assert stat.S_IMODE((target / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "server.crt").stat().st_mode) == 0o644
    # The hand-off ran after the install: it carries the new files.
    assert handed.read_text() == "NEW KEY\nNEW CHAIN\n"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["after"] == [{"step": "install-tls", "rc": 0}]


def test_a_converge_installs_and_leaves_the_restart_to_its_handler(tmp_path):
    result, target = _deploy(tmp_path, [["no-such-step"]], converge=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "server.crt").read_text() == "NEW CHAIN\n"
    assert json.loads(result.stdout.strip().splitlines()[-1])["after"] == []


def test_a_failing_step_fails_the_hook_and_says_which(tmp_path):
    result, _target = _deploy(tmp_path, [["stale", "--container", "x"]])
    assert result.returncode == 1
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["error"].startswith("the certificate is installed, but stale failed")


# --- the lock's directory -----------------------------------------------------------------------


def test_the_lock_lives_in_a_directory_only_its_owner_enters(tmp_path, monkeypatch):
    monkeypatch.setattr(ctl, "LOCK_FILE", str(tmp_path / "privreg" / "maintenance.lock"))
    monkeypatch.setattr(ctl, "CONFIG", {})
    assert ctl.acquire("converge", 0, ttl=60) is None
    assert stat.S_IMODE((tmp_path / "privreg").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "privreg" / "maintenance.lock").stat().st_mode) == 0o600


def test_a_lock_directory_others_may_write_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "lock"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(ctl, "LOCK_FILE", str(shared / "maintenance.lock"))
    with pytest.raises(ctl.ControlError, match="closed to others"):
        ctl.acquire("converge", 0, ttl=60)
    assert not (shared / "maintenance.lock").exists()


def test_a_lock_file_planted_as_a_link_is_not_followed(tmp_path, monkeypatch):
    directory = tmp_path / "privreg"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (directory / "maintenance.lock").symlink_to(victim)
    monkeypatch.setattr(ctl, "LOCK_FILE", str(directory / "maintenance.lock"))
    with pytest.raises(OSError, match="Too many levels of symbolic links") as refused:
        ctl.acquire("converge", 0, ttl=60)
    assert refused.value.errno == errno.ELOOP
    assert victim.read_text() == "keep"


def test_the_role_and_the_program_agree_on_the_settings_file():
    import yaml  # noqa: PLC0415

    constants = yaml.safe_load(
        (ROOT / "roles" / "registry_maintenance" / "vars" / "main.yml").read_text()
    )
    path = constants["_registry_maintenance_config"].replace(
        "{{ _registry_maintenance_config_dir }}", constants["_registry_maintenance_config_dir"]
    )
    assert path == ctl.DEFAULT_CONFIG
