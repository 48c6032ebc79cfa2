# Installed by privreg.registry.registry_server as /usr/local/sbin/registry-gc, with a
# #!/usr/bin/python3 line the role adds (the hosts' own Python, not a virtualenv).
"""Garbage-collect the registry without losing a layer.

garbage-collect is stop-the-world: it must never run against a registry that accepts
pushes. This switches the registry to read-only (storage.maintenance.readonly, by
recreating the container with config-readonly.yml), collects, and switches back; the
restart that switching back implies also drops the in-memory blob descriptor cache, so
no stale "layer already exists" survives.

  registry-gc run [--dry-run] [--delete-untagged] [--no-dry-run-first]
  registry-gc freeze | collect [--dry-run] [--delete-untagged] | thaw | status

Settings (paths, container, port) come from --config, a JSON file the role writes.

The last line of every command is a JSON report.
"""

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEFAULT_CONFIG = "/opt/registry/config/gc.json"
CONFIG = {}  # filled from the JSON file the role writes (see load_config)

SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
ELIGIBLE_BLOB = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")


class GCError(Exception):
    pass


def load_config(path):
    with open(path) as handle:
        CONFIG.update(json.load(handle))


def compose(*files):
    directory = CONFIG["compose_dir"]
    args = ["docker", "compose", "--project-directory", directory, "-p", CONFIG["project"]]
    for name in files:
        args += ["-f", os.path.join(directory, name)]
    subprocess.run(
        args + ["up", "--detach", "--remove-orphans"], check=True, stdout=subprocess.DEVNULL
    )


def frozen():
    result = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Args}}", CONFIG["container"]],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and CONFIG["readonly_config"] in json.loads(result.stdout or "[]")


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
    compose("compose.yml", "compose.readonly.yml")
    wait_ready()
    if not frozen():
        raise GCError("the registry did not switch to read-only")


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


def collect(dry_run, delete_untagged, report_preview=False):
    # The guard: a writable registry is never collected.
    if not frozen():
        raise GCError(
            "refusing to collect: the registry is not read-only (run 'registry-gc freeze')"
        )
    # A dry pass first, always: blob sizes can only be read before the blobs are gone.
    preview = garbage_collect(True, delete_untagged)
    measurable = CONFIG["storage_driver"] == "filesystem"
    sizes = {digest: blob_size(digest) for digest in preview["digests"]} if measurable else {}
    report = preview if dry_run else garbage_collect(False, delete_untagged)
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
    parser.add_argument("command", choices=["run", "freeze", "collect", "thaw", "status"])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--delete-untagged", action="store_true", default=None)
    parser.add_argument(
        "--no-dry-run-first", dest="dry_run_first", action="store_false", default=None
    )
    args = parser.parse_args()
    load_config(args.config)
    if args.delete_untagged is None:
        args.delete_untagged = CONFIG["delete_untagged"]
    if args.dry_run_first is None:
        args.dry_run_first = CONFIG["dry_run_first"]
    report = {"command": args.command}
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
    try:
        if args.command == "freeze":
            freeze()
        elif args.command == "thaw":
            thaw()
        elif args.command == "collect":
            report.update(collect(args.dry_run, args.delete_untagged, args.dry_run_first))
        elif args.command == "run":
            freeze()
            try:
                report.update(collect(args.dry_run, args.delete_untagged, args.dry_run_first))
            finally:
                thaw()
        report["read_only"] = frozen()
    except (GCError, subprocess.CalledProcessError) as exc:
        report.update(error=str(exc), read_only=frozen())
        print(json.dumps(report))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
