"""From registry 2.8.3 to 3.1.1 on a running deployment, and back (test_2_host_loss.py
goes on from where this leaves the registry).

The tests run in file order and share one record (STATE): the catalog pushed under 2.8,
the upgrade (with a pull load running across it), what 3.x serves afterwards, garbage
collection with --delete-untagged on 3.x, and a rollback to 2.8.3. The figures go to
artifacts/upgrade.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from registry_helpers import (
    MANIFEST_TYPES,
    catalog_digests,
    converge,
    http,
    pull_by_digest,
    pull_load,
    push_unique_image,
    recap,
)

ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts"))
USER, PASSWORD = "pusher", "molecule-pusher-pw"
IMAGE_2 = os.environ.get("PRIVREG_REGISTRY2_IMAGE", "registry:2.8.3")
IMAGE_3 = {
    "registry_server_image": os.environ.get("PRIVREG_REGISTRY3_IMAGE", "registry:3.1.1"),
    "registry_server_image_archive": os.environ.get("PRIVREG_REGISTRY3_IMAGE_ARCHIVE", ""),
}
STATE: dict = {}


def snapshot(client, registry):
    return catalog_digests(client, registry, USER, PASSWORD)


def running_image(server):
    return server.check_output("docker inspect -f '{{.Config.Image}}' registry")


def count(catalog):
    tags = sum(len(t) for t in catalog.values())
    digests = {d["digest"] for t in catalog.values() for d in t.values()}
    digests |= {c for t in catalog.values() for d in t.values() for c in d["children"]}
    return {"repositories": len(catalog), "tags": tags, "digests": len(digests)}


@pytest.fixture(scope="module")
def client(client_a):
    return client_a


def test_2_8_serves_a_catalog_with_a_multi_arch_index(server, client, registry):
    assert running_image(server) == IMAGE_2
    for repository in ("up/app", "up/tools", "team-a/service"):
        for tag in ("1.0", "1.1"):
            push_unique_image(client, registry + "/" + repository, tag=tag, payload_bytes=100_000)
    # Index children pushed by tag to up/parts; docker manifest push copies them into
    # up/multi by digest only, so there they are untagged and live through the index alone.
    parts = [
        push_unique_image(
            client, registry + "/up/parts", tag=arch, platform="linux/" + arch, changes=()
        )["reference"]
        for arch in ("amd64", "arm64")
    ]
    index = registry + "/up/multi:1.0"
    client.check_output("docker manifest rm %s >/dev/null 2>&1 || true", index)
    client.check_output("docker manifest create %s %s %s >/dev/null", index, *parts)
    client.check_output("docker manifest push --purge %s", index)
    # A tag pushed twice: its first manifest is untagged garbage for the 3.x collection.
    STATE["overwritten"] = push_unique_image(client, registry + "/up/junk", tag="1")["digest"]
    push_unique_image(client, registry + "/up/junk", tag="1")

    before = snapshot(client, registry)
    assert len(before["up/multi"]["1.0"]["children"]) == 2
    STATE["before"] = before


def test_converging_with_3_1_1_keeps_every_repository_tag_and_digest(server, client, registry):
    before = STATE["before"]
    pinned = before["up/app"]["1.0"]["digest"]
    started = time.monotonic()
    with pull_load("client-a", "https://" + registry, USER, PASSWORD, "up/app", pinned) as load:
        rc, output = converge("-e", json.dumps(IMAGE_3))
        upgrade_seconds = time.monotonic() - started
        converged_at = time.time()  # the clock of the load's failure times
    assert rc == 0, output
    assert running_image(server) == IMAGE_3["registry_server_image"]

    after = snapshot(client, registry)
    assert after == before
    STATE["after_upgrade"] = count(after)
    STATE["upgrade"] = {
        "converge_seconds": round(upgrade_seconds, 1),
        "load_requests": load["requests"],
        "load_failed": load["failed"],
        "outage_seconds": load["outage_seconds"],
    }
    # A single host recreates its container: pulls fail only while it restarts (one window
    # of seconds; 0.4 s measured), none once the run has ended though the load goes on, and
    # replicas (issue 11) would avoid even that.
    assert load["requests"] > 50, load
    assert load["outage_seconds"] <= 15, load
    late = [failure for failure in load["failures"] if failure["at"] >= converged_at]
    assert late == [], late


def test_3_1_1_reads_the_configuration_where_3_x_looks_for_it(server):
    command = json.loads(server.check_output("docker inspect -f '{{json .Config.Cmd}}' registry"))
    assert command == ["serve", "/etc/distribution/config.yml"]
    environment = json.loads(
        server.check_output("docker inspect -f '{{json .Config.Env}}' registry")
    )
    assert "OTEL_TRACES_EXPORTER=none" in environment
    mounts = server.check_output("docker inspect -f '{{json .Mounts}}' registry")
    assert '"Destination":"/etc/distribution"' in mounts


def test_every_digest_pulls_after_the_upgrade(client, registry):
    for repository, tags in STATE["before"].items():
        for entry in tags.values():
            if entry["children"]:
                for child, arch in zip(entry["children"], ("amd64", "arm64")):
                    pull_by_digest(client, registry, repository, child, "linux/" + arch)
            else:
                pull_by_digest(client, registry, repository, entry["digest"])


def test_3_1_1_takes_new_pushes(client, registry):
    STATE["pushed_on_3"] = push_unique_image(client, registry + "/up/after", tag="3")
    pull_by_digest(client, registry, "up/after", STATE["pushed_on_3"]["digest"])


def test_a_second_run_on_3_1_1_changes_nothing():
    rc, output = converge("-e", json.dumps(IMAGE_3))
    assert rc == 0, output
    changed = {host: c["changed"] for host, c in recap(output).items()}
    assert set(changed.values()) == {0}, changed


def _head(client, registry, repository, digest):
    url = "https://%s/v2/%s/manifests/%s" % (registry, repository, digest)
    return http(client, url, USER, PASSWORD, "HEAD", {"Accept": MANIFEST_TYPES})["status"]


def test_delete_untagged_on_3_x_keeps_the_index_children(client, registry):
    overwritten = STATE["overwritten"]
    assert _head(client, registry, "up/junk", overwritten) == 200
    extra = dict(IMAGE_3, registry_maintenance_gc_delete_untagged=True)
    rc, output = converge("-e", json.dumps(extra), playbook="playbooks/gc.yml")
    assert rc == 0, output
    # The positive control: the untagged manifest is gone ...
    deleted = _head(client, registry, "up/junk", overwritten) == 404
    assert deleted
    # ... and the index's untagged children are not (2.x would have deleted them).
    index = STATE["before"]["up/multi"]["1.0"]
    for child in index["children"]:
        assert _head(client, registry, "up/multi", child) == 200, child
    client.run("docker rmi -f %s/up/multi:1.0", registry)
    client.check_output("docker pull --platform linux/arm64 %s/up/multi:1.0", registry)
    STATE["gc"] = {"untagged_deleted": int(deleted), "index_children_kept": len(index["children"])}


def test_rolling_back_to_2_8_3_serves_everything_again(server, client, registry):
    expected = json.loads(json.dumps(STATE["before"]))
    expected["up/after"] = {"3": {"digest": STATE["pushed_on_3"]["digest"], "children": []}}
    rc, output = converge()  # the inventory's own image: 2.8.3
    assert rc == 0, output
    assert running_image(server) == IMAGE_2
    after = snapshot(client, registry)
    assert after == expected
    pull_by_digest(client, registry, "up/after", STATE["pushed_on_3"]["digest"])

    figures = {
        "before": count(STATE["before"]),
        "after_upgrade": STATE["after_upgrade"],
        "after_rollback": count(after),
        "upgrade": STATE["upgrade"],
        "gc_on_3": STATE["gc"],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "upgrade.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
