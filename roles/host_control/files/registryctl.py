# Installed by privreg.registry (role host_control) as /usr/local/sbin/registryctl, and as
# /usr/local/sbin/registry-gc (its earlier name), with a #!/usr/bin/python3 line the role
# adds (the host's own Python, not a virtualenv).
"""The collection's host-side control program: what runs on a registry host without Ansible.

The maintenance lock and garbage collection (settings in --config, which the role
registry_maintenance writes):

  registryctl lock --holder NAME --ttl S [--wait S] [--run ID --controller HOST:PID
              [--take-over ID]] | unlock --holder NAME [--run ID] | status
  registryctl run [--dry-run] [--delete-untagged] [--no-dry-run-first] [--wait S]
  registryctl freeze | collect [--dry-run] [--delete-untagged] | thaw [--under NAME]

Retention (rules in --config's "retention_rules", or as JSON on stdin; a report of each run
under REPORTS_DIR):

  registryctl retain [--dry-run] [--rules-stdin] [--wait S]

It plans with the registry writable (the tags the rules delete, by their last push: the
tag link's modification time), then switches the registry to read-only, deletes each
planned tag that is still as planned (same digest, same push time: a tag pushed since
stays) and the manifests only deleted tags reached, and collects once before switching
back. Registry 2.x and 3.x alike: the store is changed as the registry's own deletes change
it, and the collection runs without --delete-untagged.

Restarts that refuse no connection, and what decides them:

  registryctl restart --container C --compose-dir D --port P [--drain S] [--ready S]
                      [--lock HOLDER [--wait S]] [--if-running]   (--wait: lock_wait of --config)
  registryctl restart-service --unit U --port P [--address A] [--ready S]
  registryctl release-holds
  registryctl stale (--container C | --unit U) FILE...

TLS hand-offs:

  registryctl install-tls --key K --cert C --dest D --owner USER [--check]
  registryctl acme-deploy --config FILE       (certbot's deploy hook: RENEWED_LINEAGE)

Backup and restore with restic (settings "backup" of --config; secrets in SECRETS_FILE):

  registryctl backup-init | backup | backup-verify
  registryctl restore --host-tag NAME --data-dir D --container C [--snapshot ID] [--force]
  registryctl verify-store DIR

A backup never freezes the registry. Under the maintenance lock, for the few seconds it
takes, the store is staged beside itself: the repositories' links first (copied: the
registry may rewrite a tag's link in place), then the blobs (hard links: a blob's data is
written once, under its digest, and never changed). A client uploads a manifest's blobs
before anything links them, so every link in the stage has its blobs in the stage; restic
then reads the stage with the lock given back, and a collection meanwhile cannot take a
staged blob away (the stage holds a link to its data). The deployment's state
(certificates, keys, users, settings) goes into the same snapshot.

Garbage collection is stop-the-world: it must never run against a registry that accepts
pushes. `run` switches the registry to read-only (storage.maintenance.readonly, by
recreating the container with its read-only twin), collects, and switches back; the
restart that switching back implies also drops the in-memory blob descriptor cache, so
no stale "layer already exists" survives. A Redis cache (settings "redis") outlives that
restart, so a collection that swept empties its database while the registry is still
read-only.

Replicas (settings "replicas" > 1) share one store: a collection on one of them while the
others take pushes would delete what those pushes reference. So run, and freeze, collect
and thaw on their own, are refused there; playbooks/gc.yml takes every replica's lease
(lock --holder gc-<run id>), freezes them all, collects once and thaws them all, each
step --under that lease.

One lock serialises everything that may stop, start or sweep the registry: a collection
(from freeze to thaw), a converge (lock ... unlock around its run) and a restart asked for
with --lock hold it as a lease in LOCK_FILE, in a directory only root may enter. Whoever
finds it taken waits up to --wait seconds, then refuses. A lease ends when its holder
releases it, its process dies, or its --ttl runs out; and no lock is granted to a converge
while the registry is read-only, whoever froze it.

While a restart is under way, SYNs to the service's port are dropped rather than refused
(an iptables rule tagged HOLD_TAG), so clients retry their connect a second later instead
of failing. The rules go whatever ends the restart (a signal included); a SIGKILL leaves
them, and `release-holds`, which every converge runs under the lock, removes them.

The last line of every command but stale and install-tls is a JSON report.
"""

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DEFAULT_CONFIG = "/etc/privreg/maintenance.json"
SECRETS_FILE = "/etc/privreg/backup-secrets.json"
STAGE = ".privreg-backup-stage"
TRASH = ".privreg-retention-trash"
RESTIC_CACHE = "/var/cache/privreg-restic"
LOCK_FILE = "/run/privreg/maintenance.lock"
RETENTION_LIB = "/usr/local/lib/privreg"  # retention.py (the rules), beside this program
REPORTS_DIR = "/var/lib/privreg/retention"
RETENTION_SCRATCH = "/var/cache/privreg-retention"  # an S3 store's tags and manifests, per run
CONFIG = {}  # filled from the JSON file registry_maintenance writes (see load_config)
HOLD_TAG = "privreg-hold"
HOLD_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)

SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
EMPTY_STORE = "Path not found: /docker/registry/v2/repositories"
ELIGIBLE_BLOB = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")
HOLDER_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
CONTROLLER = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{1,10}")


class ControlError(Exception):
    pass


GCError = ControlError  # the name the GC's callers and tests know


def load_config(path, required=True):
    try:
        with open(path) as handle:
            CONFIG.update(json.load(handle))
    except FileNotFoundError:
        # A converge's first run locks before the role has written the settings.
        if required:
            raise


# --- the lock -----------------------------------------------------------------------------


@contextlib.contextmanager
def lock_file():
    """The lease file, flock()ed for the moment a lease is read and written. Its directory
    belongs to root (0700) and the file is never followed through a link, so no local user
    can create it first and hold every collection and converge back."""
    directory = os.path.dirname(LOCK_FILE)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    status = os.lstat(directory)
    if status.st_uid != os.geteuid() or status.st_mode & 0o077:
        raise ControlError(
            "%s must belong to %s and be closed to others (mode 0700)" % (directory, os.geteuid())
        )
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+") as handle:
            yield handle
    finally:
        os.close(fd)  # also drops the flock


def read_lease(handle):
    handle.seek(0)
    try:
        lease = json.loads(handle.read() or "null")
    except ValueError:
        return None
    return lease if isinstance(lease, dict) and lease_alive(lease) else None


def lease_alive(lease):
    if lease.get("pid"):
        try:
            os.kill(lease["pid"], 0)
        except ProcessLookupError:
            return False  # its process died (killed, host rebooted)
        except PermissionError:
            pass
    return lease.get("expires") is None or time.time() < lease["expires"]


def write_lease(handle, lease):
    handle.seek(0)
    handle.truncate()
    if lease:
        handle.write(json.dumps(lease))
    handle.flush()
    os.fsync(handle.fileno())


def describe(lease):
    since = time.strftime("%H:%M:%S", time.localtime(lease["since"]))
    text = "%s (since %s" % (lease["holder"], since)
    if lease.get("run"):
        text += ", run %s" % lease["run"]
    if lease.get("controller"):
        text += " from %s" % lease["controller"]
    if lease.get("pid"):
        text += ", pid %d" % lease["pid"]
    if lease.get("expires"):
        text += ", at most %d s more" % max(0, lease["expires"] - time.time())
    return text + ")"


def _owns(lease, holder, run, take_over):
    """The lease is holder's own, to renew: the same holder (and process, for a lease that
    ends with its process), and the same run - a lease without a run (a holder that is one
    run anyway, gc-<id>, or an earlier layout's) or the run named to take over counts."""
    if lease["holder"] != holder or lease.get("pid") not in (None, os.getpid()):
        return False
    return run is None or lease.get("run") in (None, run) or lease.get("run") == take_over


def acquire(
    holder,
    wait,
    ttl=None,
    own_process=False,
    while_frozen=True,
    run=None,
    controller=None,
    take_over=None,
):
    """Take the lease for holder, waiting up to wait seconds; the blocker's description if
    it could not be taken. A holder may renew its own lease; a lease of its own process ends
    with it. Converges are one holder with a run each: two at once wait for each other, and
    a run takes over another's lease only when it names that run (the role does, for a run
    of its own controller whose process is gone)."""
    deadline = time.monotonic() + max(0, wait)
    while True:
        with lock_file() as handle:
            lease = read_lease(handle)
            if lease and not _owns(lease, holder, run, take_over):
                blocker = "the lock is held by " + describe(lease)
            elif not while_frozen and frozen():
                blocker = (
                    "the registry is read-only for garbage collection (if no collection "
                    "runs, one was interrupted: 'registry-gc thaw' ends it)"
                )
            else:
                write_lease(
                    handle,
                    {
                        "holder": holder,
                        "run": run,
                        "controller": controller,
                        "pid": os.getpid() if own_process else None,
                        "since": time.time(),
                        "expires": time.time() + ttl if ttl else None,
                    },
                )
                return None
        if time.monotonic() >= deadline:
            return blocker
        time.sleep(1)


def release(holder, run=None):
    """Give holder's lease back; with a run, only that run's (another converge's stays).
    Without one (an operator freeing a lease by hand), whichever run holds it."""
    with lock_file() as handle:
        lease = read_lease(handle)
        if lease and lease["holder"] == holder and (run is None or lease.get("run") in (None, run)):
            write_lease(handle, None)
            return True
    return False


def held_by(holder):
    """None if holder holds the lease now; else why it does not."""
    with lock_file() as handle:
        lease = read_lease(handle)
    if lease and lease["holder"] == holder:
        return None
    return "the lock is not held by %s (%s)" % (
        holder,
        "held by " + describe(lease) if lease else "free",
    )


def status_of_lock():
    with lock_file() as handle:
        lease = read_lease(handle)
    return dict(lease, description=describe(lease)) if lease else None


@contextlib.contextmanager
def locked(holder, wait, ttl):
    """The lease for the duration of a block (a restart asked for with --lock)."""
    blocker = acquire(holder, wait, ttl=ttl, own_process=True)
    if blocker:
        raise ControlError("waited %d s; %s" % (wait, blocker))
    try:
        yield
    finally:
        release(holder)


# --- held connections ------------------------------------------------------------------------


class Interrupted(BaseException):
    """A signal ended the command; raised so that every finally block runs."""

    def __init__(self, signum):
        super().__init__("interrupted by signal %d" % signum)
        self.signum = signum


def _interrupt(signum, _frame):
    raise Interrupted(signum)


def iptables(*args, check=True):
    """iptables with the xtables lock waited for. A host without iptables (no Docker yet)
    has no rules: the listing commands then answer like an empty chain."""
    try:
        command = ["iptables", "-w", *args]
        return subprocess.run(command, capture_output=True, text=True, check=check)
    except FileNotFoundError:
        if check:
            raise
        return subprocess.CompletedProcess(["iptables", *args], 1, "", "iptables is not installed")


def chain_exists(chain):
    return iptables("-S", chain, check=False).returncode == 0


def hold_rules(port, container):
    """The DROP rules that hold new connections to port: for a container, the SYNs Docker
    still forwards to it (DOCKER-USER) and those that reach the host itself while Docker has
    taken the port mapping down (INPUT); for a host service, those from other hosts (INPUT;
    loopback stays open for the readiness probe). Empty without a DOCKER-USER chain."""
    port = str(int(port))
    if container:
        if not chain_exists("DOCKER-USER"):
            return []
        return [
            ("DOCKER-USER", ["-p", "tcp", "--syn", "-m", "conntrack", "--ctstate", "NEW",
                             "--ctorigdstport", port]),
            ("INPUT", ["-p", "tcp", "--syn", "--dport", port]),
        ]  # fmt: skip
    return [("INPUT", ["!", "-i", "lo", "-p", "tcp", "--syn", "--dport", port])]


def tagged_rules(chains=("DOCKER-USER", "INPUT")):
    """Every rule (as iptables -S prints it) that carries HOLD_TAG."""
    found = []
    for chain in chains:
        listing = iptables("-S", chain, check=False)
        for line in listing.stdout.splitlines():
            words = shlex.split(line)
            if words[:1] == ["-A"] and HOLD_TAG in words:
                found.append(words)
    return found


def release_holds():
    """Remove every tagged rule, each copy of it; the number removed."""
    removed = 0
    for words in tagged_rules():
        if iptables("-D", *words[1:], check=False).returncode == 0:
            removed += 1
    return removed


@contextlib.contextmanager
def held_connections(rules):
    """New connections meet the rules' DROP until the block ends, whatever ends it. The
    signal handlers are in place before the first rule, and every tagged copy goes at the
    end (an earlier run killed half-way may have left one)."""
    previous = {signum: signal.signal(signum, _interrupt) for signum in HOLD_SIGNALS}
    try:
        for chain, match in rules:
            iptables("-I", chain, *match, "-m", "comment", "--comment", HOLD_TAG, "-j", "DROP")
        yield
    finally:
        try:
            if rules:
                release_holds()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def wait_connect(address, port, timeout):
    """Until address:port accepts a connection (TLS and authentication come after; what
    matters is that held SYNs will be answered)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, int(port)), 1).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ControlError(
                    "%s:%s did not accept connections within %d s (%s)"
                    % (address, port, timeout, exc)
                ) from exc
        time.sleep(0.1)


def docker_inspect(container, template):
    """The template for container; None if there is no such container (or no Docker yet:
    a host being restored gets its engine from the converge after the restore)."""
    try:
        result = subprocess.run(
            ["docker", "container", "inspect", "--format", template, container],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def restart_container(args):
    """Restart a compose service's container: drained (its own stop grace), connections held."""
    if args.if_running and docker_inspect(args.container, "{{.State.Running}}") != "true":
        return {"restarted": False, "reason": "%s is not running" % args.container}
    with held_connections(hold_rules(args.port, container=True)):
        subprocess.run(
            ["docker", "compose", "--project-directory", args.compose_dir,
             "--file", os.path.join(args.compose_dir, "compose.yml"),
             "restart", "--timeout", str(args.drain + 10), args.service],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        address = (
            docker_inspect(
                args.container, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
            )
            or ""
        ).split()
        if not address:
            raise ControlError("%s has no address after its restart" % args.container)
        wait_connect(address[0], args.container_port, args.ready)
    return {"restarted": True}


def restart_service(args):
    """Restart a host service (systemd unit) with connections from other hosts held."""
    with held_connections(hold_rules(args.port, container=False)):
        subprocess.run(["systemctl", "restart", args.unit], check=True)
        wait_connect(args.address, args.port, args.ready)
    return {"restarted": True}


# --- what started before its files ---------------------------------------------------------


def _rfc3339_ns(text):
    """Docker's StartedAt (RFC 3339, up to nanoseconds) as nanoseconds since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        raise ControlError("cannot read the start time %r" % text)
    base, fraction, zone = match.groups()
    moment = datetime.datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return int(moment.timestamp()) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])


def container_started_ns(container):
    started = docker_inspect(container, "{{.State.StartedAt}}")
    return _rfc3339_ns(started) if started else None


def unit_started_ns(unit):
    """When the newest process under the unit's main process started (HAProxy's newest
    worker is the one its last reload started), from /proc, to the kernel's tick."""
    main_pid = subprocess.run(
        ["systemctl", "show", "--property", "MainPID", "--value", unit],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not main_pid.isdigit() or int(main_pid) == 0:
        return None
    starts = [_process_start_ticks(main_pid)]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat_fields(entry)
            if fields and fields[1] == main_pid:  # its parent is the main process
                starts.append(int(fields[19]))
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    newest = max(start for start in starts if start is not None)
    return int((time.time() - uptime + newest / os.sysconf("SC_CLK_TCK")) * 10**9)


def _proc_stat_fields(pid):
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), after the command name."""
    try:
        with open("/proc/%s/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _process_start_ticks(pid):
    fields = _proc_stat_fields(pid)
    return int(fields[19]) if fields else None


def newer_files(started_ns, paths):
    """The paths whose modification time is after started_ns (missing ones are skipped)."""
    newer = []
    for path in paths:
        try:
            if os.stat(path).st_mtime_ns > started_ns:
                newer.append(path)
        except FileNotFoundError:
            continue
    return newer


# --- TLS hand-offs -------------------------------------------------------------------------------


def _write_atomically(dest, data, mode, owner=None):
    """dest replaced by one rename of a file written beside it (mode and owner set first)."""
    directory = os.path.dirname(dest) or "."
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            os.chown(temporary, owner[0], owner[1])
        os.chmod(temporary, mode)
        os.replace(temporary, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def install_tls(key, cert, dest, owner, check=False):
    """The key and its certificate chain as one file for a service that reads them through
    one open (the token service): replaced by one rename, so no connection sees a key that
    does not fit its certificate. 'changed' or 'unchanged'; check only says which."""
    import pwd  # noqa: PLC0415 (only this command needs the user database)

    with open(key, "rb") as handle:
        data = handle.read()
    with open(cert, "rb") as handle:
        data += handle.read()
    try:
        with open(dest, "rb") as handle:
            if handle.read() == data:
                return "unchanged"
    except FileNotFoundError:
        pass
    if not check:
        account = pwd.getpwnam(owner)
        _write_atomically(dest, data, 0o600, (account.pw_uid, account.pw_gid))
    return "changed"


def acme_deploy(config_path):
    """certbot's deploy hook: install the renewed certificate and key where their reader
    wants them, then (not during a converge, which restarts by itself) run the steps that
    make the services take them, each a registryctl command, in order."""
    lineage = os.environ.get("RENEWED_LINEAGE")
    if not lineage:
        raise ControlError("acme-deploy runs as certbot's deploy hook: RENEWED_LINEAGE is not set")
    with open(config_path) as handle:
        config = json.load(handle)
    for item in config["install"]:
        with open(os.path.join(lineage, item["source"]), "rb") as handle:
            _write_atomically(item["dest"], handle.read(), int(item["mode"], 8), (0, 0))
    report = {
        "installed": os.path.realpath(os.path.join(lineage, "cert.pem")),
        "after": [],
    }
    if os.environ.get("PRIVREG_ACME_CONVERGE") == "1":
        return report
    for step in config.get("after", []):
        result = subprocess.run(
            [sys.executable, os.path.abspath(__file__), *step],
            capture_output=True,
            text=True,
            check=False,
        )
        report["after"].append({"step": step[0], "rc": result.returncode})
        if result.returncode != 0:
            raise ControlError(
                "the certificate is installed, but %s failed: %s"
                % (step[0], (result.stdout + result.stderr).strip()[-1000:])
            )
    return report


# --- backup and restore ---------------------------------------------------------------------


def _json_lines(text):
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def restic_environment(secrets, repository):
    """restic's environment: the repository, its password and the store's keys, never on
    a command line (ps would show them) or in a file other than the 0600 secrets."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "TZ") if key in os.environ}
    env.update({key: str(value) for key, value in secrets.get("environment", {}).items()})
    env.update(
        RESTIC_REPOSITORY=repository,
        RESTIC_PASSWORD=secrets["password"],
        RESTIC_CACHE_DIR=RESTIC_CACHE,
        HOME="/root",
    )
    return env


def load_secrets():
    with open(SECRETS_FILE) as handle:
        return json.load(handle)


def restic(env, *args, check=True):
    """restic with the given arguments; its failure names the command and restic's words
    (its environment holds the secrets and is never part of a message)."""
    result = subprocess.run(["restic", *args], capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise ControlError(
            "restic %s failed: %s" % (args[0], (result.stderr or result.stdout).strip()[-1500:])
        )
    return result


def repository_exists(env):
    return restic(env, "cat", "config", check=False).returncode == 0


LINK = re.compile(r"^sha256:[0-9a-f]{64}$")


def _read_link(path, attempts=50):
    """A link file's content, read again while the registry is rewriting it (2.x truncates
    a tag's link and writes the new digest into the same file)."""
    for _attempt in range(attempts):
        with open(path) as handle:
            content = handle.read()
        if LINK.match(content.strip()):
            return content
        time.sleep(0.02)
    raise ControlError("%s does not hold a digest: %r" % (path, content[:100]))


def stage_store(data_dir, stage):
    """The store in stage: the repositories' links copied (their uploads in progress left
    out), then the blobs as hard links (see above)."""
    shutil.rmtree(stage, ignore_errors=True)
    target = os.path.join(stage, "docker", "registry", "v2")
    os.makedirs(target)
    store = os.path.join(data_dir, "docker", "registry", "v2")
    repositories = os.path.join(store, "repositories")
    for directory, subdirectories, files in os.walk(repositories):
        subdirectories[:] = [name for name in subdirectories if name != "_uploads"]
        destination = os.path.join(target, os.path.relpath(directory, store))
        os.makedirs(destination, exist_ok=True)
        for name in files:
            if name == "link":
                try:
                    content = _read_link(os.path.join(directory, name))
                except FileNotFoundError:
                    continue  # deleted since the walk listed it
                with open(os.path.join(destination, name), "w") as handle:
                    handle.write(content)
    if os.path.isdir(os.path.join(store, "blobs")):
        subprocess.run(["cp", "-al", os.path.join(store, "blobs"), target], check=True)


def copy_bucket(settings, copy):
    """The store's bucket into a second one (rclone), links first and blobs second, for the
    reason the stage is made in that order."""
    source = settings["s3"]
    env = dict(os.environ)
    for name, side in (("SRC", source), ("DST", copy)):
        env.update(
            {
                "RCLONE_CONFIG_%s_TYPE" % name: "s3",
                "RCLONE_CONFIG_%s_PROVIDER" % name: "Other",
                "RCLONE_CONFIG_%s_ENDPOINT" % name: side.get("endpoint", ""),
                "RCLONE_CONFIG_%s_REGION" % name: side.get("region", ""),
            }
        )
    env["RCLONE_CONFIG_SRC_ACCESS_KEY_ID"] = container_env("REGISTRY_STORAGE_S3_ACCESSKEY") or ""
    env["RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY"] = (
        container_env("REGISTRY_STORAGE_S3_SECRETKEY") or ""
    )
    env["RCLONE_CONFIG_DST_ACCESS_KEY_ID"] = copy["access_key"]
    env["RCLONE_CONFIG_DST_SECRET_ACCESS_KEY"] = copy["secret_key"]
    root = "/".join(
        p for p in (source.get("rootdirectory", "").strip("/"), "docker/registry/v2") if p
    )
    for part in ("repositories", "blobs"):
        result = subprocess.run(
            [
                "rclone",
                "sync",
                "--s3-no-check-bucket",
                # A refusing destination fails the backup in seconds, not after rclone's
                # default 3 x 10 retries, because the copy holds the maintenance lock.
                "--retries",
                "1",
                "--low-level-retries",
                "3",
                "--contimeout",
                "15s",
                "src:%s/%s/%s" % (source["bucket"], root, part),
                "dst:%s/%s/%s" % (copy["bucket"], root, part),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise ControlError("copying the bucket failed: %s" % result.stderr.strip()[-1500:])


def record_backup(path, report):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    _write_atomically(path, (json.dumps(report, indent=2) + "\n").encode(), 0o644)


def backup(settings):
    """One backup: stage, snapshot, forget and prune, check; the record of it. A failed
    step fails the backup before anything older is forgotten."""
    started = time.time()
    secrets = load_secrets()
    env = restic_environment(secrets, settings["repository"])
    host_tag = "host=" + settings["host"]
    paths = [path for path in settings.get("paths", []) if os.path.exists(path)]
    stage = None
    report = {"started": started}
    try:
        with locked("backup", CONFIG.get("lock_wait", 600), ttl=3600):
            lock_started = report["staged_from"] = time.time()
            if settings.get("data_dir"):
                stage = os.path.join(settings["data_dir"], STAGE)
                stage_store(settings["data_dir"], stage)
                paths.append(stage)
            if settings.get("bucket_copy"):
                copy_bucket(
                    settings, dict(settings["bucket_copy"], **secrets.get("bucket_copy", {}))
                )
            report["staged_until"] = time.time()
            report["lock_seconds"] = round(report["staged_until"] - lock_started, 3)
        result = restic(
            env,
            "backup",
            "--json",
            "--host",
            settings["host"],
            "--tag",
            "privreg",
            "--tag",
            host_tag,
            *paths,
        )
        summary = next(
            (line for line in _json_lines(result.stdout) if line.get("message_type") == "summary"),
            {},
        )
        report.update(
            snapshot=summary.get("snapshot_id"),
            files=summary.get("total_files_processed"),
            bytes=summary.get("total_bytes_processed"),
            bytes_added=summary.get("data_added"),
        )
        keep = settings.get("keep", {})
        restic(
            env,
            "forget",
            "--tag",
            host_tag,
            "--prune",
            *[
                arg
                for period in ("last", "daily", "weekly", "monthly")
                if keep.get(period)
                for arg in ("--keep-" + period, str(keep[period]))
            ],
        )
        check = ["check"] + (
            ["--read-data-subset", settings["check_read_data_subset"]]
            if settings.get("check_read_data_subset")
            else []
        )
        restic(env, *check)
    except Exception as exc:  # noqa: BLE001 - whatever failed is recorded, then reported
        error = str(exc) if isinstance(exc, ControlError) else "%s: %s" % (type(exc).__name__, exc)
        report.update(result="failed", error=error, seconds=round(time.time() - started, 3))
        if settings.get("state_file"):
            record_backup(settings["state_file"], report)
        raise ControlError(error) from exc
    finally:
        if stage:
            shutil.rmtree(stage, ignore_errors=True)
    report.update(result="ok", seconds=round(time.time() - started, 3), finished=time.time())
    if settings.get("state_file"):
        record_backup(settings["state_file"], report)
    return report


def backup_init(settings):
    env = restic_environment(load_secrets(), settings["repository"])
    if repository_exists(env):
        return {"initialized": False}
    restic(env, "init")
    return {"initialized": True}


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_store(v2):
    """A store as the registry reads it: every blob's data hashes to its name, and every tag's
    manifest (an index's child manifests too) and all the blobs they reference are there,
    linked into their repository."""
    report = {"blobs": 0, "corrupt_blobs": [], "tags": 0, "missing": []}
    blobs = os.path.join(v2, "blobs", "sha256")
    for prefix in sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []:
        for name in sorted(os.listdir(os.path.join(blobs, prefix))):
            data = os.path.join(blobs, prefix, name, "data")
            if os.path.isfile(data):
                report["blobs"] += 1
                if _sha256_of(data) != name:
                    report["corrupt_blobs"].append("sha256:" + name)

    def blob(digest):
        path = os.path.join(v2, "blobs", blob_data_path(digest))
        return path if os.path.isfile(path) else None

    def linked(repository, kind, digest):
        algorithm, hexdigest = digest.split(":", 1)
        return os.path.isfile(os.path.join(repository, kind, algorithm, hexdigest, "link"))

    def check_manifest(repository, name, where, digest):
        path = blob(digest)
        if path is None or not linked(repository, os.path.join("_manifests", "revisions"), digest):
            report["missing"].append("%s: manifest %s" % (where, digest))
            return
        with open(path, "rb") as handle:
            manifest = json.loads(handle.read())
        for child in manifest.get("manifests") or []:
            check_manifest(repository, name, where, child["digest"])
        for part in ([manifest["config"]] if manifest.get("config") else []) + (
            manifest.get("layers") or []
        ):
            if blob(part["digest"]) is None or not linked(repository, "_layers", part["digest"]):
                report["missing"].append("%s: blob %s" % (where, part["digest"]))

    repositories = os.path.join(v2, "repositories")
    for directory, subdirectories, _files in os.walk(repositories):
        if "_manifests" not in subdirectories:
            continue
        name = os.path.relpath(directory, repositories)
        tags = os.path.join(directory, "_manifests", "tags")
        for tag in sorted(os.listdir(tags)) if os.path.isdir(tags) else []:
            link = os.path.join(tags, tag, "current", "link")
            if not os.path.isfile(link):
                continue
            report["tags"] += 1
            with open(link) as handle:
                check_manifest(directory, name, "%s:%s" % (name, tag), handle.read().strip())
    report["ok"] = not report["corrupt_blobs"] and not report["missing"]
    return report


def backup_verify(settings):
    """Verify the latest snapshot without touching the registry: restic reads every pack
    (check --read-data), and the store restored into a scratch directory is verified."""
    env = restic_environment(load_secrets(), settings["repository"])
    restic(env, "check", "--read-data")
    report = {"checked": True}
    if settings.get("data_dir"):
        # Beside the store: a scratch copy of it may be large (/tmp is often memory).
        scratch = tempfile.mkdtemp(prefix=".privreg-verify.", dir=settings["data_dir"])
        try:
            stage = os.path.join(settings["data_dir"], STAGE)
            restic(
                env,
                "restore",
                "latest",
                "--host",
                settings["host"],
                "--tag",
                "host=" + settings["host"],
                "--target",
                scratch,
                "--include",
                stage,
            )
            report.update(
                verify_store(os.path.join(scratch, stage.lstrip("/"), "docker", "registry", "v2"))
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not report["ok"]:
            raise ControlError(
                "the snapshot's store is damaged: %d corrupt blobs, %d missing (%s)"
                % (
                    len(report["corrupt_blobs"]),
                    len(report["missing"]),
                    "; ".join((report["corrupt_blobs"] + report["missing"])[:5]),
                )
            )
    return report


def restore(host_tag, data_dir, container, snapshot, force, repository, only_check=False):
    """Put a snapshot back on this host: the state where it was, the store into data_dir.
    A host that has a registry already is refused unless forced (then its registry is
    stopped and its store kept aside)."""
    live = []
    if docker_inspect(container, "{{.Id}}"):
        live.append("a container %s" % container)
    store = os.path.join(data_dir, "docker")
    if os.path.isdir(store) and os.listdir(store):
        live.append("a store in %s" % store)
    if live and not force:
        raise ControlError(
            "this host has a registry already (%s): restoring would replace it. Restore onto a "
            "new host, or pass --force (registry_maintenance_restore_force: true)" % ", ".join(live)
        )
    if only_check:
        return {"restorable": True, "live": live}
    env = restic_environment(load_secrets(), repository)
    if live:
        subprocess.run(["docker", "stop", container], capture_output=True, check=False)
        if os.path.isdir(store):
            os.rename(store, "%s.before-restore-%d" % (store, time.time()))
    listing = restic(env, "snapshots", "--json", "--tag", "host=" + host_tag)
    snapshots = json.loads(listing.stdout or "[]")
    if not snapshots:
        raise ControlError("the repository has no snapshot of %s" % host_tag)
    if snapshot == "latest":
        chosen = snapshots[-1]["short_id"]
    else:
        # Another host's snapshot would bring its CA and keys here: only this host's.
        ids = {s.get("short_id") for s in snapshots} | {s.get("id") for s in snapshots}
        if snapshot not in ids:
            raise ControlError(
                "snapshot %s is not one of %s's (%s)"
                % (snapshot, host_tag, ", ".join(s["short_id"] for s in snapshots[-5:]))
            )
        chosen = snapshot
    restic(env, "restore", chosen, "--target", "/")
    stage = os.path.join(data_dir, STAGE)
    if os.path.isdir(os.path.join(stage, "docker")):
        os.rename(os.path.join(stage, "docker"), store)
    shutil.rmtree(stage, ignore_errors=True)
    return {"restored": chosen, "snapshots": len(snapshots), "forced": bool(live)}


# --- the registry ---------------------------------------------------------------------------


def compose(*files):
    directory = CONFIG["compose_dir"]
    args = ["docker", "compose", "--project-directory", directory, "-p", CONFIG["project"]]
    for name in files:
        args += ["-f", os.path.join(directory, name)]
    subprocess.run(
        args + ["up", "--detach", "--remove-orphans"], check=True, stdout=subprocess.DEVNULL
    )


def frozen():
    return container_state()[1]


def container_state():
    """(container id, read-only?) of the registry; (None, False) if there is none."""
    if "container" not in CONFIG:
        return None, False  # not deployed yet
    try:
        result = subprocess.run(
            ["docker", "inspect", "--format", "{{.Id}} {{json .Args}}", CONFIG["container"]],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None, False  # no Docker yet
    if result.returncode != 0:
        return None, False
    container_id, args = result.stdout.split(" ", 1)
    return container_id, CONFIG["readonly_config"] in json.loads(args or "[]")


def wait_ready():
    context = ssl.create_default_context()
    # A readiness probe on loopback only; trust is the clients' business.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if CONFIG.get("client_cert"):
        # Mutual TLS: the registry wants a client certificate even for /v2/.
        context.load_cert_chain(CONFIG["client_cert"], CONFIG["client_key"])
    url, timeout = CONFIG["ready_url"], CONFIG["ready_timeout"]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            # The URL comes from the root-owned config the role writes: loopback http(s).
            urllib.request.urlopen(url, timeout=5, context=context)  # noqa: S310
            return
        except urllib.error.HTTPError as exc:
            if exc.code in (200, 401):
                return
            last = exc.code
        except OSError as exc:
            last = exc
        time.sleep(1)
    raise ControlError(
        "the registry did not answer on %s within %ss (last: %s)" % (url, timeout, last)
    )


def freeze():
    try:
        compose("compose.yml", "compose.readonly.yml")
        wait_ready()
        if not frozen():
            raise ControlError("the registry did not switch to read-only")
    except (ControlError, subprocess.CalledProcessError) as exc:
        # Half-way is the worst state: read-only (or down) with nobody to switch it back.
        try:
            thaw()
        except (ControlError, subprocess.CalledProcessError) as thaw_exc:
            raise ControlError("%s; switching back failed too: %s" % (exc, thaw_exc)) from exc
        raise ControlError("%s (switched back to writable)" % exc) from exc


def thaw():
    compose("compose.yml")
    wait_ready()


def blob_data_path(digest):
    """Where the store keeps a blob's data, below its blobs directory (every driver alike)."""
    algorithm, hexdigest = digest.split(":", 1)
    return "%s/%s/%s/data" % (algorithm, hexdigest[:2], hexdigest)


def blob_size(digest):
    path = os.path.join(CONFIG["blobs_dir"], blob_data_path(digest))
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def garbage_collect(dry_run, delete_untagged):
    """One pass of the registry's own garbage-collect inside the running container."""
    args = ["docker", "exec", CONFIG["container"], "/bin/registry", "garbage-collect"]
    if dry_run:
        args.append("--dry-run")
    if delete_untagged:
        args.append("--delete-untagged")
    result = subprocess.run(
        args + [CONFIG["readonly_config"]], capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and EMPTY_STORE in output:
        # Nothing was ever pushed: the store has no repositories yet, so nothing to collect.
        return {
            "dry_run": dry_run,
            "blobs_marked": 0,
            "blobs_deleted": 0,
            "manifests_deleted": 0,
            "digests": [],
        }
    if result.returncode != 0:
        raise ControlError("garbage-collect failed: " + output[-2000:])
    summary = SUMMARY.search(output)
    if summary is None:
        raise ControlError("garbage-collect printed no summary: " + output[-2000:])
    return {
        "dry_run": dry_run,
        "blobs_marked": int(summary.group(1)),
        "blobs_deleted": int(summary.group(2)),
        "manifests_deleted": int(summary.group(3)),
        "digests": sorted(set(ELIGIBLE_BLOB.findall(output))),
    }


def container_env(name):
    """A variable of the registry container's environment (the role's registry.env)."""
    result = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", CONFIG["container"]],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix = name + "="
    for entry in json.loads(result.stdout) or []:
        if entry.startswith(prefix):
            # The role writes each value as a YAML double-quoted (JSON) string.
            value = entry[len(prefix) :]
            try:
                return json.loads(value)
            except ValueError:
                return value
    return None


def redis_command(connection, reader, *args):
    """One command in Redis's protocol (RESP); the reply line, or ControlError for an error."""
    encoded = [arg.encode() for arg in args]
    request = b"*%d\r\n" % len(encoded)
    request += b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in encoded)
    connection.sendall(request)
    reply = reader.readline().decode(errors="replace").strip()
    if not reply.startswith("+"):
        # The command's name only: AUTH's argument is the password.
        raise ControlError("Redis refused %s: %s" % (args[0], reply or "no answer"))
    return reply


def flush_cache():
    """Empty the Redis cache's database; None when the registry has no Redis cache.

    Its descriptors of swept blobs would otherwise answer "exists" for blobs that are gone,
    and a client would skip the upload of a layer the registry no longer has."""
    redis = CONFIG.get("redis")
    if not redis:
        return None
    password = container_env("REGISTRY_REDIS_PASSWORD")
    try:
        with socket.create_connection((redis["host"], redis["port"]), timeout=10) as connection:
            reader = connection.makefile("rb")
            if password:
                redis_command(connection, reader, "AUTH", password)
            redis_command(connection, reader, "SELECT", str(redis["db"]))
            redis_command(connection, reader, "FLUSHDB")
    except (OSError, ControlError) as exc:
        raise ControlError(
            "the sweep is done, but the Redis cache at %s:%s could not be emptied (%s): "
            "run FLUSHDB on its database %s before pushing again"
            % (redis["host"], redis["port"], exc, redis["db"])
        ) from exc
    return True


def still_frozen(container_id, after):
    """The registry has stayed the same read-only container since the collection began."""
    if container_state() != (container_id, True):
        raise ControlError(
            "the registry did not stay read-only %s: something restarted or thawed it; "
            "pushes in that window may reference swept blobs - push them again" % after
        )


def collect(dry_run, delete_untagged, report_preview=False):
    # The guard: a writable registry is never collected.
    container_id, read_only = container_state()
    if not read_only:
        raise ControlError(
            "refusing to collect: the registry is not read-only (run 'registry-gc freeze')"
        )
    # A dry pass first, always: blob sizes can only be read before the blobs are gone.
    preview = garbage_collect(True, delete_untagged)
    still_frozen(container_id, "during the dry pass")
    measurable = CONFIG["storage_driver"] == "filesystem"
    sizes = {digest: blob_size(digest) for digest in preview["digests"]} if measurable else {}
    if dry_run:
        report = preview
    else:
        report = garbage_collect(False, delete_untagged)
        still_frozen(container_id, "during the sweep")
        report["cache_emptied"] = flush_cache()
    report.update(
        delete_untagged=delete_untagged,
        storage_driver=CONFIG["storage_driver"],
        # Only the local disk can be measured from here; object stores report null.
        bytes_freed=sum(sizes.get(d, 0) for d in report["digests"]) if measurable else None,
    )
    if report_preview and not dry_run:
        report["preview"] = dict(preview, bytes=sum(sizes.values()) if measurable else None)
    return report


# --- retention (rules of module_utils/retention.py, installed beside registryctl) ------------


def _retention_rules_module():
    if RETENTION_LIB not in sys.path:
        sys.path.insert(0, RETENTION_LIB)
    import retention  # noqa: PLC0415  (installed by host_control, found only at run time)

    return retention


class FilesystemStore:
    """The registry's store on the local disk (docker/registry/v2 under data_dir)."""

    def __init__(self, root):
        self.root = root
        self.repositories_dir = os.path.join(root, "repositories")
        self.blobs_dir = os.path.join(root, "blobs")
        # Beside docker/ under the data directory: the same file system, and no path the
        # registry walks.
        self.trash = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(root))), TRASH)
        self._trashed = 0
        self._references = {}

    def repositories(self):
        """Names of the repositories: directories holding _manifests, at any depth."""
        names = []
        for directory, subdirs, _files in os.walk(self.repositories_dir):
            if "_manifests" in subdirs:
                names.append(os.path.relpath(directory, self.repositories_dir))
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("_"))
        return sorted(names)

    def tag_dir(self, repository, tag):
        return os.path.join(self.repositories_dir, repository, "_manifests", "tags", tag)

    def tag(self, repository, tag):
        """{tag, digest, pushed} of one tag; None if it is gone. The link is rewritten by
        every push of the tag, so its modification time is the tag's last push."""
        link = os.path.join(self.tag_dir(repository, tag), "current", "link")
        try:
            with open(link) as handle:
                digest = handle.read().strip()
            pushed = os.stat(link).st_mtime
        except FileNotFoundError:
            return None
        if not DIGEST.fullmatch(digest):
            return None  # not a link the registry wrote: never a candidate, never a path
        return {"tag": tag, "digest": digest, "pushed": pushed}

    def tags(self, repository):
        directory = os.path.join(self.repositories_dir, repository, "_manifests", "tags")
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        return [tag for tag in (self.tag(repository, name) for name in names) if tag]

    def delete_tag(self, repository, tag):
        """What the registry's DELETE of a tag removes: the tag's directory, nothing else.
        It is renamed into the trash (one rename: the registry is read-only meanwhile) and
        removed by empty_trash once the registry takes pushes again."""
        self._to_trash(self.tag_dir(repository, tag))

    def revision_dir(self, repository, digest):
        algorithm, hexdigest = digest.split(":", 1)
        return os.path.join(
            self.repositories_dir, repository, "_manifests", "revisions", algorithm, hexdigest
        )

    def revisions(self, repository):
        """The manifests the repository holds (its revision links), tagged or not."""
        directory = os.path.join(self.repositories_dir, repository, "_manifests", "revisions")
        found = []
        for algorithm in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            for entry in sorted(os.listdir(os.path.join(directory, algorithm))):
                digest = "%s:%s" % (algorithm, entry)
                if DIGEST.fullmatch(digest):
                    found.append(digest)
        return found

    def unlink_manifest(self, repository, digest):
        """The manifest out of the repository (its revision link, as the registry's DELETE
        by digest removes it); its blobs go with the collection that follows."""
        self._to_trash(self.revision_dir(repository, digest))

    def _to_trash(self, path):
        os.makedirs(self.trash, mode=0o700, exist_ok=True)
        self._trashed += 1
        os.rename(path, os.path.join(self.trash, "%d-%d" % (os.getpid(), self._trashed)))

    def empty_trash(self):
        shutil.rmtree(self.trash, ignore_errors=True)

    def refresh(self):
        pass  # read live: the store is this disk

    def commit(self):
        pass  # each delete_tag was its own rename

    def prefetch(self, digests):
        pass  # read where they are

    def blob_path(self, digest):
        return os.path.join(self.blobs_dir, blob_data_path(digest))

    def blob_sizes(self):
        self.sizes = sizes = {}
        for algorithm in (
            sorted(os.listdir(self.blobs_dir)) if os.path.isdir(self.blobs_dir) else []
        ):
            for prefix in os.scandir(os.path.join(self.blobs_dir, algorithm)):
                for blob in os.scandir(prefix.path):
                    try:
                        size = os.stat(os.path.join(blob.path, "data")).st_size
                    except FileNotFoundError:
                        continue
                    sizes["%s:%s" % (algorithm, blob.name)] = size
        return sizes

    def references(self, digest):
        """(child manifests, blobs) a manifest refers to: an index's manifests; an image's
        config and layers (and the manifest's own blob, counted by the caller)."""
        if digest not in self._references:
            try:
                with open(self.blob_path(digest), "rb") as handle:
                    manifest = json.loads(handle.read())
            except (OSError, ValueError):
                manifest = {}
            if not isinstance(manifest, dict):
                manifest = {}
            children = [m.get("digest") for m in manifest.get("manifests") or []]
            blobs = [m.get("digest") for m in manifest.get("layers") or []]
            blobs.append((manifest.get("config") or {}).get("digest"))
            # Only well-formed digests: they become paths (and rclone's file lists).
            children = [d for d in children if isinstance(d, str) and DIGEST.fullmatch(d)]
            blobs = [d for d in blobs if isinstance(d, str) and DIGEST.fullmatch(d)]
            self._references[digest] = (children, blobs)
        return self._references[digest]


class S3Store:
    """The registry's store in an S3 bucket, read and changed with rclone.

    The tags' links and the manifests a plan reads are copied into a scratch mirror laid out
    as the filesystem driver's store, which FilesystemStore reads; a tag's push time is its
    link object's LastModified (--use-server-modtime: the registry writes no mtime of its
    own, and rclone then asks no HEAD per object). The registry's own S3 keys, from its
    container, reach rclone in its environment, never on a command line."""

    def __init__(self, s3, scratch):
        root = "/".join(
            p for p in (s3.get("rootdirectory", "").strip("/"), "docker/registry/v2") if p
        )
        self.remote = "store:%s/%s" % (s3["bucket"], root)
        self.env = dict(
            os.environ,
            RCLONE_CONFIG_STORE_TYPE="s3",
            RCLONE_CONFIG_STORE_PROVIDER="Other",
            RCLONE_CONFIG_STORE_ENDPOINT=s3.get("endpoint") or "",
            RCLONE_CONFIG_STORE_REGION=s3.get("region") or "",
            RCLONE_CONFIG_STORE_ACCESS_KEY_ID=container_env("REGISTRY_STORAGE_S3_ACCESSKEY") or "",
            RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY=container_env("REGISTRY_STORAGE_S3_SECRETKEY")
            or "",
        )
        self.scratch = scratch
        self.mirror = FilesystemStore(os.path.join(scratch, "docker", "registry", "v2"))
        self.tag_files = {}  # (repository, tag) -> every object under the tag's directory
        self.doomed = []
        self.fetched = set()
        self.refresh()

    def rclone(self, *args, stdin=None):
        result = subprocess.run(
            [
                "rclone",
                "--s3-no-check-bucket",
                "--use-server-modtime",
                "--retries",
                "2",
                "--low-level-retries",
                "3",
                "--contimeout",
                "15s",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if result.returncode != 0:
            raise ControlError("rclone %s failed: %s" % (args[0], result.stderr.strip()[-1500:]))
        return result.stdout

    def refresh(self):
        """The tags and manifests as the bucket has them now: every object under a tag's
        or a revision's directory listed, each tag's current link copied with its
        LastModified."""
        shutil.rmtree(self.mirror.repositories_dir, ignore_errors=True)
        os.makedirs(self.mirror.repositories_dir, mode=0o700)
        self.tag_files, self.revision_files = {}, {}
        listing = json.loads(
            self.rclone(
                "lsjson",
                "-R",
                "--files-only",
                "--include",
                "/**/_manifests/tags/**",
                "--include",
                "/**/_manifests/revisions/**",
                self.remote + "/repositories",
            )
            or "[]"
        )
        for entry in listing:
            path = entry["Path"]
            if "/_manifests/tags/" in path:
                repository, _sep, rest = path.partition("/_manifests/tags/")
                self.tag_files.setdefault((repository, rest.split("/", 1)[0]), []).append(path)
            else:
                repository, _sep, rest = path.partition("/_manifests/revisions/")
                parts = rest.split("/")
                digest = "%s:%s" % (parts[0], parts[1]) if len(parts) > 2 else ""
                if DIGEST.fullmatch(digest):
                    self.revision_files.setdefault(repository, {}).setdefault(digest, [])
                    self.revision_files[repository][digest].append(path)
        if self.tag_files:
            self.rclone(
                "copy",
                "--include",
                "/**/_manifests/tags/*/current/link",
                self.remote + "/repositories",
                self.mirror.repositories_dir,
            )

    def repositories(self):
        names = {repository for repository, _tag in self.tag_files} | set(self.revision_files)
        return sorted(names)

    def tags(self, repository):
        return self.mirror.tags(repository)

    def tag(self, repository, tag):
        return self.mirror.tag(repository, tag)

    def revisions(self, repository):
        return sorted(self.revision_files.get(repository, {}))

    def delete_tag(self, repository, tag):
        # Queued; commit() deletes every queued object in one rclone run.
        self.doomed.extend(self.tag_files.get((repository, tag), []))

    def unlink_manifest(self, repository, digest):
        self.doomed.extend(self.revision_files.get(repository, {}).get(digest, []))

    def commit(self):
        if self.doomed:
            listing = self._list_file("doomed", self.doomed)
            self.rclone("delete", "--files-from-raw", listing, self.remote + "/repositories")
            self.doomed = []

    def _list_file(self, name, paths):
        path = os.path.join(self.scratch, name + ".txt")
        with open(path, "w") as handle:
            handle.write("".join(p + "\n" for p in paths))
        return path

    def empty_trash(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

    def blob_sizes(self):
        listing = json.loads(
            self.rclone(
                "lsjson", "-R", "--files-only", "--include", "/*/*/*/data", self.remote + "/blobs"
            )
            or "[]"
        )
        self.sizes = {}
        for entry in listing:
            algorithm, _prefix, hexdigest, _data = entry["Path"].split("/")
            self.sizes["%s:%s" % (algorithm, hexdigest)] = entry["Size"]
        return self.sizes

    def references(self, digest):
        if digest not in self.fetched:
            self.prefetch([digest])
        return self.mirror.references(digest)

    def prefetch(self, digests):
        """The manifests and an index's children into the mirror, one rclone copy per
        round (an index's children are known once the index is read), not one per manifest."""
        pending = set(digests)
        while pending - self.fetched:
            wanted = sorted(pending - self.fetched)
            listing = self._list_file("manifests", [blob_data_path(d) for d in wanted])
            self.rclone(
                "copy", "--files-from-raw", listing, self.remote + "/blobs", self.mirror.blobs_dir
            )
            self.fetched.update(wanted)
            for digest in wanted:
                pending.update(self.mirror.references(digest)[0])


def manifest_closure(store, digests):
    """The manifests, and an index's children (in the same repository), recursively."""
    seen, pending = set(), list(digests)
    while pending:
        digest = pending.pop()
        if digest not in seen:
            seen.add(digest)
            pending.extend(store.references(digest)[0])
    return seen


def reachable(store, digests):
    """Every blob the manifests hold on to: themselves, an index's children, their configs
    and layers."""
    manifests = manifest_closure(store, digests)
    return manifests.union(*(store.references(digest)[1] for digest in manifests))


def doomed_manifests(store, deleted_digests, kept_digests, present):
    """The manifests a repository no longer needs once tags on deleted_digests go: those
    only the deleted tags reach (an index's children with it), present in the repository.
    A manifest a kept tag reaches, or one that no tag ever reached (pushed by digest),
    stays."""
    return sorted(
        (manifest_closure(store, deleted_digests) - manifest_closure(store, kept_digests))
        & set(present)
    )


NO_PULLS = {"since": None, "repositories": {}}


def load_pulls(path):
    """The pull record registry-pulls keeps ({since, repositories: {name: {tags, digests}}}).

    Without one (no receiver, or a damaged file) "since" is None, and a rule with
    keep_pulled_days deletes nothing for want of a pull."""
    if not path:
        return NO_PULLS
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (FileNotFoundError, ValueError):
        return NO_PULLS
    if not (
        isinstance(record, dict)
        and isinstance(record.get("since"), (int, float))
        and isinstance(record.get("repositories"), dict)
    ):
        return NO_PULLS
    return record


def last_pulled(pulls, repository, tag):
    """When the tag, or the manifest it points to, was last pulled; None if never seen."""
    entry = pulls["repositories"].get(repository) or {}
    times = [
        (entry.get("tags") or {}).get(tag["tag"]),
        (entry.get("digests") or {}).get(tag["digest"]),
    ]
    times = [t for t in times if isinstance(t, (int, float))]
    return max(times) if times else None


def retention_plan(store, rules, now, pulls=None):
    """What the rules delete, per repository, with the bytes that would be freed.

    A deleted tag's manifest leaves its repository when no kept tag reaches it; the
    collection after (without --delete-untagged: on registry 2.x it deletes the children
    of multi-arch indexes) frees the blobs no remaining manifest reaches."""
    retention = _retention_rules_module()
    held = {name: (store.tags(name), store.revisions(name)) for name in store.repositories()}
    everything = {digest for _tags, present in held.values() for digest in present}
    store.prefetch(everything)  # an object store's manifests read once, up front
    held_before = reachable(store, everything)
    repositories, remaining = [], set()
    pulls = pulls or NO_PULLS
    for name, (tags, present) in held.items():
        for tag in tags:
            tag["pulled"] = last_pulled(pulls, name, tag)
        decision = retention.decide(rules, name, tags, now, pulls["since"])
        if decision is None:
            remaining.update(present)
            continue
        deleted = {tag["tag"] for tag in decision["delete"]}
        doomed = doomed_manifests(
            store,
            {tag["digest"] for tag in tags if tag["tag"] in deleted},
            {tag["digest"] for tag in tags if tag["tag"] not in deleted},
            present,
        )
        remaining.update(set(present) - set(doomed))
        repositories.append(dict(decision, repository=name, tags=len(tags), manifests=doomed))
    sizes = store.blob_sizes()
    stays = reachable(store, remaining)
    for entry in repositories:
        for tag in entry["delete"]:
            only_its = reachable(store, [tag["digest"]]) - stays
            tag["bytes"] = sum(sizes.get(digest, 0) for digest in only_its)
    return {
        "repositories": repositories,
        "tags_before": sum(entry["tags"] for entry in repositories),
        "tags_to_delete": sum(len(entry["delete"]) for entry in repositories),
        "bytes_to_free": sum(size for digest, size in sizes.items() if digest not in stays),
        "bytes_unreferenced_before": sum(
            size for digest, size in sizes.items() if digest not in held_before
        ),
    }


def delete_planned(store, plan):
    """Delete the planned tags that are still as planned (a tag pushed or moved since the
    plan, to another digest or by a newer push, stays), then the manifests only the
    deleted tags reached, judged again from the tags as they are now. Runs while the
    registry is read-only."""
    deleted, skipped, unlinked = 0, 0, 0
    for entry in plan["repositories"]:
        repository = entry["repository"]
        entry["deleted"], entry["skipped"] = [], []
        for tag in entry["delete"]:
            now = store.tag(repository, tag["tag"])
            if now is None:
                entry["skipped"].append({"tag": tag["tag"], "reason": "already gone"})
            elif now["digest"] != tag["digest"] or now["pushed"] != tag["pushed"]:
                entry["skipped"].append({"tag": tag["tag"], "reason": "pushed during the run"})
            else:
                store.delete_tag(repository, tag["tag"])
                entry["deleted"].append(tag["tag"])
        gone = set(entry["deleted"])
        tags = store.tags(repository)
        entry["manifests_unlinked"] = doomed_manifests(
            store,
            {tag["digest"] for tag in entry["delete"] if tag["tag"] in gone},
            {tag["digest"] for tag in tags if tag["tag"] not in gone},
            store.revisions(repository),
        )
        for digest in entry["manifests_unlinked"]:
            store.unlink_manifest(repository, digest)
        deleted += len(gone)
        skipped += len(entry["skipped"])
        unlinked += len(entry["manifests_unlinked"])
    return deleted, skipped, unlinked


def write_report(report, kept):
    """The run's report under REPORTS_DIR (root only); the newest `kept` reports stay."""
    os.makedirs(REPORTS_DIR, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(report["started"]))
    stamp += ".%03dZ" % (report["started"] % 1 * 1000)
    name = "retention-%s%s.json" % (stamp, "-dry-run" if report["dry_run"] else "")
    path = os.path.join(REPORTS_DIR, name)
    _write_atomically(path, (json.dumps(report, indent=2) + "\n").encode(), 0o600)
    reports = sorted(n for n in os.listdir(REPORTS_DIR) if n.startswith("retention-"))
    for old in reports[: max(0, len(reports) - kept)]:
        os.unlink(os.path.join(REPORTS_DIR, old))
    return path


def retain(rules, dry_run):
    """Plan with the registry writable; then, frozen, delete what is still as planned and
    collect once. The freeze makes the re-check and the delete one step no push can enter."""
    started = time.time()
    if CONFIG["storage_driver"] == "s3":
        store = S3Store(CONFIG["s3"], os.path.join(RETENTION_SCRATCH, str(os.getpid())))
    else:
        store = FilesystemStore(os.path.join(CONFIG["data_dir"], "docker", "registry", "v2"))
        store.empty_trash()  # what a killed run left
    try:
        report = retain_with(store, rules, dry_run, started)
    finally:
        store.empty_trash()
    report["tags_after"] = report["tags_before"] - report["tags_deleted"]
    report["seconds"] = round(time.time() - started, 3)
    report["report_file"] = write_report(report, CONFIG.get("retention_reports_kept", 10))
    return report


def retain_with(store, rules, dry_run, started):
    report = {"dry_run": dry_run, "started": started, "rules": rules}
    pulls = load_pulls(CONFIG.get("pulls_state"))
    report["pulls_recorded_since"] = pulls["since"]
    report.update(retention_plan(store, rules, started, pulls))
    report.update(tags_deleted=0, tags_skipped=0, manifests_unlinked=0, gc=None, frozen_seconds=0)
    if not dry_run and report["tags_to_delete"]:
        freeze()
        frozen_at = time.monotonic()
        try:
            container_id = container_state()[0]
            store.refresh()  # the tags as they are now that no push can change them
            deleted, skipped, unlinked = delete_planned(store, report)
            report.update(tags_deleted=deleted, tags_skipped=skipped, manifests_unlinked=unlinked)
            store.commit()
            still_frozen(container_id, "while tags were deleted")
            report["gc"] = collect(False, False) if deleted else None
            if report["gc"] and report["gc"]["bytes_freed"] is None:
                # An object store's sizes came with the plan's listing.
                report["gc"]["bytes_freed"] = sum(
                    store.sizes.get(digest, 0) for digest in report["gc"]["digests"]
                )
        finally:
            thaw()
            report["frozen_seconds"] = round(time.monotonic() - frozen_at, 3)
    return report


def retain_command(args, report):
    problem = None
    if CONFIG.get("replicas", 1) > 1:
        problem = "retention of replicas is not supported yet: the others would take pushes"
    elif CONFIG.get("storage_driver") == "s3" and not shutil.which("rclone"):
        problem = "retention of an S3 store needs rclone: converge the registry with site.yml"
    elif CONFIG.get("storage_driver") not in ("filesystem", "s3") or not (
        CONFIG.get("data_dir") or CONFIG.get("s3")
    ):
        problem = "retention reads a store on the local disk or in S3; this registry's is %s" % (
            CONFIG.get("storage_driver"),
        )
    rules = json.load(sys.stdin) if args.rules_stdin else CONFIG.get("retention_rules", [])
    problems = _retention_rules_module().rule_problems(rules)
    if problem or problems:
        report["error"] = problem or " ".join(problems)
        return report_and_exit(report, 1)
    blocker = acquire("collection", args.wait, own_process=True)
    if blocker:
        report.update(error="waited %d s; %s" % (args.wait, blocker), read_only=frozen())
        return report_and_exit(report, 1)
    try:
        report.update(retain(rules, args.dry_run))
    except (ControlError, subprocess.CalledProcessError, OSError) as exc:
        report.update(error=str(exc), read_only=frozen())
        return report_and_exit(report, 1)
    finally:
        release("collection")
    return report_and_exit(report)


# --- the command line -------------------------------------------------------------------------

GC_COMMANDS = ("run", "freeze", "collect", "thaw")


def parser():
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    def command(name, config=False):
        sub = commands.add_parser(name)
        if config:
            sub.add_argument("--config", default=DEFAULT_CONFIG)
        return sub

    for name in ("lock", "unlock"):
        sub = command(name, config=True)
        sub.add_argument("--holder", required=True, help="who holds the lease (e.g. converge)")
        sub.add_argument("--run", help="which run of the holder (a converge's id)")
        if name == "lock":
            sub.add_argument("--ttl", type=int, required=True, help="seconds until it lapses")
            sub.add_argument("--wait", type=int, help="seconds to wait for it (0: refuse)")
            sub.add_argument("--controller", help="where the run runs (host:pid), for messages")
            sub.add_argument("--take-over", help="the run of a dead converge whose lease to take")
    command("status", config=True)
    for name in GC_COMMANDS:
        sub = command(name, config=True)
        if name != "run":  # run takes the collection's own lease
            sub.add_argument("--under", help="act under the lease this holder took with lock")
        sub.add_argument("--wait", type=int, help="seconds to wait for the lock (0: refuse)")
        if name in ("run", "collect"):
            sub.add_argument("--dry-run", action="store_true")
            sub.add_argument("--delete-untagged", action="store_true", default=None)
            sub.add_argument(
                "--no-dry-run-first", dest="dry_run_first", action="store_false", default=None
            )
    sub = command("retain", config=True)
    sub.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    sub.add_argument("--rules-stdin", action="store_true", help="rules as JSON on stdin")
    sub.add_argument("--wait", type=int, help="seconds to wait for the lock (0: refuse)")
    sub = command("restart")
    sub.add_argument("--container", required=True)
    sub.add_argument("--compose-dir", required=True)
    sub.add_argument("--service", default="registry", help="the compose service")
    sub.add_argument("--port", type=int, required=True, help="the published port to hold")
    sub.add_argument("--container-port", type=int, default=5000)
    sub.add_argument("--drain", type=int, default=30, help="seconds requests may finish")
    sub.add_argument("--ready", type=int, default=60, help="seconds to wait for it to listen")
    sub.add_argument("--lock", metavar="HOLDER", help="restart under the maintenance lock")
    sub.add_argument("--wait", type=int, help="seconds to wait for the lock (default: lock_wait)")
    sub.add_argument("--config", default=DEFAULT_CONFIG, help="where lock_wait is")
    sub.add_argument("--if-running", action="store_true", help="only a running container")
    sub = command("restart-service")
    sub.add_argument("--unit", required=True)
    sub.add_argument("--port", type=int, required=True)
    sub.add_argument("--address", default="127.0.0.1", help="where the service listens")
    sub.add_argument("--ready", type=int, default=30)
    command("release-holds")
    sub = command("stale")
    started = sub.add_mutually_exclusive_group(required=True)
    started.add_argument("--container")
    started.add_argument("--unit")
    sub.add_argument("files", nargs="+")
    sub = command("install-tls")
    for name in ("--key", "--cert", "--dest", "--owner"):
        sub.add_argument(name, required=True)
    sub.add_argument("--check", action="store_true")
    sub = command("acme-deploy")
    sub.add_argument("--config", required=True)
    for name in ("backup-init", "backup", "backup-verify"):
        command(name, config=True)
    sub = command("restore")
    sub.add_argument("--host-tag", required=True, help="whose snapshots (the inventory name)")
    sub.add_argument("--data-dir", required=True, help="where the registry's store goes")
    sub.add_argument("--container", required=True, help="the registry's container")
    sub.add_argument("--repository", required=True)
    sub.add_argument("--snapshot", default="latest")
    sub.add_argument("--force", action="store_true", help="even onto a host with a registry")
    sub.add_argument("--check", action="store_true", help="only whether it would be refused")
    sub = command("verify-store")
    sub.add_argument("directory", help="a store's docker/registry/v2 directory")
    return top


def check_names(top, args):
    """Holder names are words of the lease file and of error messages: keep them plain."""
    if getattr(args, "holder", None) is not None and not HOLDER_NAME.fullmatch(args.holder):
        top.error("--holder NAME: lowercase letters, digits and -")
    for name in (
        getattr(args, "holder", None),
        getattr(args, "under", None),
        getattr(args, "lock", None),
    ):
        if name == "collection":
            top.error("'collection' is registry-gc's own holder name")
    for name in (getattr(args, "under", None), getattr(args, "lock", None)):
        if name is not None and not HOLDER_NAME.fullmatch(name):
            top.error("--under and --lock NAME: lowercase letters, digits and -")
    for option in ("run", "take_over"):
        value = getattr(args, option, None)
        if value is not None and not HOLDER_NAME.fullmatch(value):
            top.error("--%s ID: lowercase letters, digits and -" % option.replace("_", "-"))
    controller = getattr(args, "controller", None)
    if controller is not None and not CONTROLLER.fullmatch(controller):
        top.error("--controller HOST:PID: a host name, a colon and digits")
    if args.command == "lock" and args.ttl <= 0:
        top.error("lock needs --ttl SECONDS (> 0)")


def report_and_exit(report, code=0):
    print(json.dumps(report))
    return code


def gc_command(args, report):
    """freeze, collect, thaw and run, under the collection's own lease or --under one."""
    args.under = getattr(args, "under", None)
    if CONFIG.get("replicas", 1) > 1 and args.under is None:
        report["error"] = (
            "refusing to %s one of %d replicas on its own: the others would go on taking "
            "pushes into the store it sweeps. Collect them all with playbooks/gc.yml."
            % (args.command, CONFIG["replicas"])
        )
        return report_and_exit(report, 1)
    delete_untagged = getattr(args, "delete_untagged", None)
    if delete_untagged is None:
        delete_untagged = CONFIG.get("delete_untagged", False)
    dry_run_first = getattr(args, "dry_run_first", None)
    if dry_run_first is None:
        dry_run_first = CONFIG.get("dry_run_first", True)
    if (
        args.command in ("run", "collect")
        and delete_untagged
        and CONFIG.get("major_version", 2) < 3
        and not CONFIG.get("delete_untagged_2x_opt_in")
    ):
        # distribution issue 3178: 2.x sweeps the children of multi-arch indexes.
        report["error"] = (
            "refusing --delete-untagged on registry 2.x: it deletes the child manifests of "
            "multi-arch indexes (distribution issue 3178, fixed in 3.0). Upgrade to registry 3, "
            "or set registry_maintenance_gc_delete_untagged_2x_opt_in if no multi-arch images "
            "exist."
        )
        return report_and_exit(report, 1)
    if args.under:
        # The caller took the lease with lock and gives it back with unlock.
        blocker = held_by(args.under)
    else:
        blocker = acquire("collection", args.wait, own_process=True)
        blocker = blocker and "waited %d s; %s" % (args.wait, blocker)
    if blocker:
        report.update(error=blocker, read_only=frozen())
        return report_and_exit(report, 1)
    dry_run = getattr(args, "dry_run", False)
    try:
        if args.command == "freeze":
            freeze()
        elif args.command == "thaw":
            thaw()
        elif args.command == "collect":
            report.update(collect(dry_run, delete_untagged, dry_run_first))
        else:
            try:
                freeze()
                report.update(collect(dry_run, delete_untagged, dry_run_first))
            finally:
                thaw()
        report["container"], report["read_only"] = container_state()
    except (ControlError, subprocess.CalledProcessError) as exc:
        report.update(error=str(exc), read_only=frozen())
        return report_and_exit(report, 1)
    finally:
        if not args.under:
            release("collection")
    return report_and_exit(report)


def main():
    top = parser()
    args = top.parse_args()
    check_names(top, args)
    report = {"command": args.command}
    if args.command == "stale":
        started = (
            container_started_ns(args.container) if args.container else unit_started_ns(args.unit)
        )
        # Nothing runs: nothing started before its files (the start that comes reads them).
        for path in newer_files(started, args.files) if started is not None else []:
            print(path)
        return 0
    if args.command == "install-tls":
        print(install_tls(args.key, args.cert, args.dest, args.owner, args.check))
        return 0
    if hasattr(args, "config") and args.command != "acme-deploy":
        try:
            load_config(
                args.config,
                required=args.command
                in GC_COMMANDS + ("retain", "backup-init", "backup", "backup-verify"),
            )
        except FileNotFoundError:
            report["error"] = "%s does not exist: deploy the registry with site.yml first" % (
                args.config,
            )
            return report_and_exit(report, 1)
    if getattr(args, "wait", None) is None and hasattr(args, "wait"):
        args.wait = CONFIG.get("lock_wait", 600 if args.command == "restart" else 0)
    try:
        if args.command == "lock":
            blocker = acquire(
                args.holder,
                args.wait,
                ttl=args.ttl,
                while_frozen=False,
                run=args.run,
                controller=args.controller,
                take_over=args.take_over,
            )
            report.update(locked=blocker is None, holder=args.holder, run=args.run)
            if blocker:
                report["error"] = "waited %d s; %s" % (args.wait, blocker)
            return report_and_exit(report, 0 if blocker is None else 1)
        if args.command == "unlock":
            report.update(released=release(args.holder, args.run))
            return report_and_exit(report)
        if args.command == "status":
            container_id, read_only = container_state()
            report.update(read_only=read_only, container=container_id, lock=status_of_lock())
            return report_and_exit(report)
        if args.command in GC_COMMANDS:
            return gc_command(args, report)
        if args.command == "retain":
            return retain_command(args, report)
        if args.command == "release-holds":
            report["removed"] = release_holds()
        elif args.command == "restart":
            with (
                locked(args.lock, args.wait, ttl=args.drain + args.ready + 60)
                if args.lock
                else (contextlib.nullcontext())
            ):
                report.update(restart_container(args))
        elif args.command == "restart-service":
            report.update(restart_service(args))
        elif args.command == "acme-deploy":
            report.update(acme_deploy(args.config))
        elif args.command in ("backup-init", "backup", "backup-verify"):
            if not CONFIG.get("backup"):
                raise ControlError("no backup is configured in %s" % args.config)
            action = {"backup-init": backup_init, "backup": backup, "backup-verify": backup_verify}
            report.update(action[args.command](CONFIG["backup"]))
        elif args.command == "restore":
            report.update(
                restore(
                    args.host_tag,
                    args.data_dir,
                    args.container,
                    args.snapshot,
                    args.force,
                    args.repository,
                    only_check=args.check,
                )
            )
        elif args.command == "verify-store":
            report.update(verify_store(args.directory))
            if not report["ok"]:
                return report_and_exit(report, 1)
    except (ControlError, subprocess.CalledProcessError, OSError) as exc:
        report["error"] = str(exc)
        return report_and_exit(report, 1)
    except Interrupted as exc:
        report["error"] = str(exc)
        report_and_exit(report, 1)
        return 128 + exc.signum
    return report_and_exit(report)


if __name__ == "__main__":
    sys.exit(main())
