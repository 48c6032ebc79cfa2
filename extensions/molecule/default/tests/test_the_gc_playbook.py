"""Garbage collection as the operator runs it: the timer the inventory turns on is installed
and scheduled; playbooks/gc.yml --check reports what a collection would free and frees
nothing, and the real run then frees it; registry-gc (registryctl's earlier name, which
the README's recovery steps use) frees a lease by hand. After test_retention.py (file
order): its runs count the bytes they free, which this file's garbage would change."""

from __future__ import annotations

import json
import re

from registry_helpers import assert_timer_scheduled, converge, http, push_unique_image, recap


def test_the_gc_timer_is_installed_enabled_and_scheduled(server):
    timer = assert_timer_scheduled(server, "registry-gc.timer")
    # The role's default calendar, as systemd reads it back.
    assert "OnCalendar=Sun *-*-* 03:00:00" in timer["TimersCalendar"], timer


def blobs_present(client, registry, user, password, repository, digests):
    """Which of the blobs the registry still serves for `repository` (HEAD: 200)."""
    url = "https://%s/v2/%s/blobs/%%s" % (registry, repository)
    return [d for d in digests if http(client, url % d, user, password, "HEAD")["status"] == 200]


def test_a_dry_run_frees_nothing_and_the_real_run_frees_what_it_reported(
    server, client_a, registry, credentials
):
    """Garbage made the way a CI registry makes it: a tag pushed again leaves the image it
    named untagged (this registry's API deletes nothing), which a collection with
    delete_untagged frees."""
    user, password = credentials("client-a")
    first = push_unique_image(client_a, registry + "/gc/check", tag="moving", payload_bytes=8192)
    url = "https://%s/v2/gc/check/manifests/%s" % (registry, first["digest"])
    manifest = json.loads(http(client_a, url, user, password)["body"])
    blobs = [layer["digest"] for layer in manifest["layers"]] + [manifest["config"]["digest"]]
    push_unique_image(client_a, registry + "/gc/check", tag="moving")
    untagged = "registry_maintenance_gc_delete_untagged=true"

    rc, output = converge("--check", "-e", untagged, playbook="playbooks/gc.yml")
    assert rc == 0, output[-3000:]
    would = re.search(r"Would free (\d+) blobs", output)
    assert would, output[-3000:]
    # The untagged image's layer and config at least (its manifest is a blob too).
    assert int(would.group(1)) >= len(blobs), would.group(0)
    assert recap(output)["registry"]["changed"] == 0
    assert blobs_present(client_a, registry, user, password, "gc/check", blobs) == blobs
    # Writable again after the dry run's read-only spell.
    push_unique_image(client_a, registry + "/gc/after-check")

    rc, output = converge("-e", untagged, playbook="playbooks/gc.yml")
    assert rc == 0, output[-3000:]
    freed = re.search(r"Freed (\d+) blobs", output)
    assert freed, output[-3000:]
    assert int(freed.group(1)) >= len(blobs), freed.group(0)
    # The check above would have seen blobs go: these are gone now.
    assert blobs_present(client_a, registry, user, password, "gc/check", blobs) == []


def test_registry_gc_frees_a_lease_by_hand(server):
    server.check_output("registryctl lock --holder gc-by-hand --ttl 600")
    status = json.loads(server.check_output("registry-gc status").splitlines()[-1])
    assert status["lock"]["holder"] == "gc-by-hand", status
    server.check_output("registry-gc unlock --holder gc-by-hand")
    assert json.loads(server.check_output("registry-gc status").splitlines()[-1])["lock"] is None
