# Installed by privreg.registry.registry_server as /usr/local/sbin/registry-gc, with a
# #!/usr/bin/python3 line the role adds (the hosts' own Python, not a virtualenv).
"""Garbage-collect the registry without losing a layer.

garbage-collect is stop-the-world: it must never run against a registry that accepts
pushes. This switches the registry to read-only (storage.maintenance.readonly, by
recreating the container with config-readonly.yml), collects, and switches back; the
restart that switching back implies also drops the in-memory blob descriptor cache, so
no stale "layer already exists" survives. A Redis cache (gc.json "redis") outlives that
restart, so a collection that swept empties its database while the registry is still
read-only.

  registry-gc run [--dry-run] [--delete-untagged] [--no-dry-run-first] [--wait S]
  registry-gc freeze | collect [--dry-run] [--delete-untagged] | thaw | status
  registry-gc lock --holder NAME --ttl S [--wait S] | unlock --holder NAME
  registry-gc freeze | collect ... | thaw --under NAME   (under a lease NAME holds)

Replicas (gc.json "replicas" > 1) share one store: a collection on one of them while the
others take pushes would delete what those pushes reference. So run, and freeze, collect
and thaw on their own, are refused there; playbooks/gc.yml takes every replica's lease
(lock --holder gc-<run id>), freezes them all, collects once and thaws them all, each
step --under that lease.

One lock serialises everything that may stop, start or sweep the registry: a collection
(from freeze to thaw) and a converge of the role (lock ... unlock around its run) hold it
as a lease in LOCK_FILE. Whoever finds it taken waits up to --wait seconds, then refuses.
A lease ends when its holder releases it, its process dies, or its --ttl runs out; and no
lock is granted to a converge while the registry is read-only, whoever froze it.

Settings (paths, container, port) come from --config, a JSON file the role writes.

The last line of every command is a JSON report.
"""

import argparse
import contextlib
import fcntl
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEFAULT_CONFIG = "/opt/registry/config/gc.json"
LOCK_FILE = "/run/lock/registry-maintenance.lock"
CONFIG = {}  # filled from the JSON file the role writes (see load_config)

SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
ELIGIBLE_BLOB = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")


class GCError(Exception):
    pass


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
    """The lease file, flock()ed for the moment a lease is read and written."""
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
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
    if lease.get("pid"):
        text += ", pid %d" % lease["pid"]
    if lease.get("expires"):
        text += ", at most %d s more" % max(0, lease["expires"] - time.time())
    return text + ")"


def acquire(holder, wait, ttl=None, own_process=False, while_frozen=True):
    """Take the lease for holder, waiting up to wait seconds; the blocker's description if
    it could not be taken. A holder may renew its own lease (a re-run after an interrupted
    converge); a lease of its own process ends with it."""
    deadline = time.monotonic() + max(0, wait)
    while True:
        with lock_file() as handle:
            lease = read_lease(handle)
            if lease and (lease["holder"] != holder or lease.get("pid") not in (None, os.getpid())):
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
                        "pid": os.getpid() if own_process else None,
                        "since": time.time(),
                        "expires": time.time() + ttl if ttl else None,
                    },
                )
                return None
        if time.monotonic() >= deadline:
            return blocker
        time.sleep(1)


def release(holder):
    with lock_file() as handle:
        lease = read_lease(handle)
        if lease and lease["holder"] == holder:
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
    raise GCError("the registry did not answer on %s within %ss (last: %s)" % (url, timeout, last))


def freeze():
    try:
        compose("compose.yml", "compose.readonly.yml")
        wait_ready()
        if not frozen():
            raise GCError("the registry did not switch to read-only")
    except (GCError, subprocess.CalledProcessError) as exc:
        # Half-way is the worst state: read-only (or down) with nobody to switch it back.
        try:
            thaw()
        except (GCError, subprocess.CalledProcessError) as thaw_exc:
            raise GCError("%s; switching back failed too: %s" % (exc, thaw_exc)) from exc
        raise GCError("%s (switched back to writable)" % exc) from exc


def thaw():
    compose("compose.yml")
    wait_ready()


def blob_size(digest):
    algorithm, hexdigest = digest.split(":", 1)
    path = os.path.join(CONFIG["blobs_dir"], algorithm, hexdigest[:2], hexdigest, "data")
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
    if result.returncode != 0:
        raise GCError("garbage-collect failed: " + output[-2000:])
    summary = SUMMARY.search(output)
    if summary is None:
        raise GCError("garbage-collect printed no summary: " + output[-2000:])
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
    """One command in Redis's protocol (RESP); the reply line, or GCError for an error."""
    encoded = [arg.encode() for arg in args]
    request = b"*%d\r\n" % len(encoded)
    request += b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in encoded)
    connection.sendall(request)
    reply = reader.readline().decode(errors="replace").strip()
    if not reply.startswith("+"):
        # The command's name only: AUTH's argument is the password.
        raise GCError("Redis refused %s: %s" % (args[0], reply or "no answer"))
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
    except (OSError, GCError) as exc:
        raise GCError(
            "the sweep is done, but the Redis cache at %s:%s could not be emptied (%s): "
            "run FLUSHDB on its database %s before pushing again"
            % (redis["host"], redis["port"], exc, redis["db"])
        ) from exc
    return True


def still_frozen(container_id, after):
    """The registry has stayed the same read-only container since the collection began."""
    if container_state() != (container_id, True):
        raise GCError(
            "the registry did not stay read-only %s: something restarted or thawed it; "
            "pushes in that window may reference swept blobs - push them again" % after
        )


def collect(dry_run, delete_untagged, report_preview=False):
    # The guard: a writable registry is never collected.
    container_id, read_only = container_state()
    if not read_only:
        raise GCError(
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["run", "freeze", "collect", "thaw", "status", "lock", "unlock"]
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--delete-untagged", action="store_true", default=None)
    parser.add_argument(
        "--no-dry-run-first", dest="dry_run_first", action="store_false", default=None
    )
    parser.add_argument("--wait", type=int, help="seconds to wait for the lock (0: refuse)")
    parser.add_argument("--holder", help="lock/unlock: who holds the lease (e.g. converge)")
    parser.add_argument("--ttl", type=int, help="lock: seconds until the lease lapses")
    parser.add_argument(
        "--under", help="freeze/collect/thaw: act under the lease this holder took with lock"
    )
    args = parser.parse_args()
    locking = args.command in ("lock", "unlock")
    holder_name = re.compile(r"[a-z][a-z0-9-]{0,31}")
    if locking and not holder_name.fullmatch(args.holder or ""):
        parser.error("lock and unlock need --holder NAME (lowercase letters, digits, -)")
    if "collection" in (args.holder, args.under):
        parser.error("'collection' is registry-gc's own holder name")
    if args.under is not None and (
        args.command not in ("freeze", "collect", "thaw") or not holder_name.fullmatch(args.under)
    ):
        parser.error("--under NAME (lowercase letters, digits, -) is for freeze, collect, thaw")
    if args.command == "lock" and not (args.ttl and args.ttl > 0):
        parser.error("lock needs --ttl SECONDS (> 0)")
    load_config(args.config, required=not locking)
    if args.wait is None:
        args.wait = CONFIG.get("lock_wait", 0)
    report = {"command": args.command}
    if args.command == "lock":
        blocker = acquire(args.holder, args.wait, ttl=args.ttl, while_frozen=False)
        report.update(locked=blocker is None, holder=args.holder)
        if blocker:
            report["error"] = "waited %d s; %s" % (args.wait, blocker)
        print(json.dumps(report))
        return 0 if blocker is None else 1
    if args.command == "unlock":
        report.update(released=release(args.holder))
        print(json.dumps(report))
        return 0
    if args.command == "status":
        container_id, read_only = container_state()
        report.update(read_only=read_only, container=container_id, lock=status_of_lock())
        print(json.dumps(report))
        return 0
    if CONFIG.get("replicas", 1) > 1 and args.under is None:
        report["error"] = (
            "refusing to %s one of %d replicas on its own: the others would go on taking "
            "pushes into the store it sweeps. Collect them all with playbooks/gc.yml."
            % (args.command, CONFIG["replicas"])
        )
        print(json.dumps(report))
        return 1
    if args.delete_untagged is None:
        args.delete_untagged = CONFIG["delete_untagged"]
    if args.dry_run_first is None:
        args.dry_run_first = CONFIG["dry_run_first"]
    if (
        args.delete_untagged
        and CONFIG.get("major_version", 2) < 3
        and not CONFIG.get("delete_untagged_2x_opt_in")
    ):
        # distribution issue 3178: 2.x sweeps the children of multi-arch indexes.
        report["error"] = (
            "refusing --delete-untagged on registry 2.x: it deletes the child manifests of "
            "multi-arch indexes (distribution issue 3178, fixed in 3.0). Upgrade to registry 3, "
            "or set registry_server_gc_delete_untagged_2x_opt_in if no multi-arch images exist."
        )
        print(json.dumps(report))
        return 1
    if args.under:
        # The caller took the lease with lock and gives it back with unlock.
        blocker = held_by(args.under)
    else:
        blocker = acquire("collection", args.wait, own_process=True)
        blocker = blocker and "waited %d s; %s" % (args.wait, blocker)
    if blocker:
        report.update(error=blocker, read_only=frozen())
        print(json.dumps(report))
        return 1
    try:
        if args.command == "freeze":
            freeze()
        elif args.command == "thaw":
            thaw()
        elif args.command == "collect":
            report.update(collect(args.dry_run, args.delete_untagged, args.dry_run_first))
        elif args.command == "run":
            try:
                freeze()
                report.update(collect(args.dry_run, args.delete_untagged, args.dry_run_first))
            finally:
                thaw()
        report["container"], report["read_only"] = container_state()
    except (GCError, subprocess.CalledProcessError) as exc:
        report.update(error=str(exc), read_only=frozen())
        print(json.dumps(report))
        return 1
    finally:
        if not args.under:
            release("collection")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
