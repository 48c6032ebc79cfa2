"""Retention on a store in S3 (SeaweedFS): a tag's push time is its link object's
LastModified, which the test cannot set, so the history is pushed in steps a second and a
bit apart, oldest first. The bucket itself (boto3) shows which objects went.

Rule: retention/* keeps latest and v-releases, and the 3 newest of the other tags.
History, oldest first: v1, t01, t02 (image A), t03, t04, t05 (A again), t06 (image B),
latest (B). So t01, t02 and t03 go; A stays (t05), and only t01's and t03's blobs are freed.
The same on both lines (s3 and s3@2): registry 2.x's API deletes by digest only, but
retention changes the store as a tag delete would.
"""

from __future__ import annotations

import json
import tempfile

import pytest
from registry_helpers import (
    MANIFEST_TYPES,
    converge,
    http,
    pull_by_digest,
    recap,
)
from retention_helpers import (
    bytes_freed_by_deleting,
    image,
    latest_report,
    push_history,
    tags_of,
)

REPOSITORY = "retention/s3app"
RULES = [{"repositories": "retention/*", "keep_last": 3, "keep_tags": "latest|v[0-9]+"}]
IMAGES = [
    image("v1", REPOSITORY, ["v1"], 30000),
    image("t01", REPOSITORY, ["t01"], 31000),
    image("A", REPOSITORY, ["t02"], 32000),
    image("t03", REPOSITORY, ["t03"], 33000),
    image("t04", REPOSITORY, ["t04"], 34000),
    {"name": "t05", "repository": REPOSITORY, "tags": ["t05"], "retag": "A"},
    image("B", REPOSITORY, ["t06"], 36000),
    {"name": "latest", "repository": REPOSITORY, "tags": ["latest"], "retag": "B"},
]
DELETED = {(REPOSITORY, "t01"), (REPOSITORY, "t02"), (REPOSITORY, "t03")}


def objects(bucket):
    return {obj.key: obj.size for obj in bucket.objects.all()}


def retention_run(*args):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as rules:
        rules.write(json.dumps({"registry_maintenance_retention_rules": RULES}))
        rules.flush()
        return converge(*args, "-e", "@" + rules.name, playbook="playbooks/retention.yml")


@pytest.fixture(scope="module")
def history(server, client_a, registry, credentials):
    user, password = credentials("client-a")
    pushed = push_history(client_a, registry, user, password, IMAGES, pause=1.2)
    # Nothing unreferenced beside the history: what goes afterwards is retention's.
    collected = json.loads(server.check_output("registryctl run").splitlines()[-1])
    assert "error" not in collected, collected
    return pushed


def test_retention_on_s3_deletes_by_push_order_and_frees_exactly_those_blobs(
    history, server, client_b, registry, credentials, bucket
):
    tags = tags_of(IMAGES)
    expected_bytes = bytes_freed_by_deleting(history, tags, DELETED)
    assert expected_bytes > 60000  # t01's and t03's layers at least

    before = objects(bucket)
    rc, output = retention_run("--check")
    assert rc == 0, output[-3000:]
    dry = latest_report(server, dry_run=True)
    assert {
        (e["repository"], t["tag"]) for e in dry["repositories"] for t in e["delete"]
    } == DELETED
    assert dry["bytes_to_free"] == expected_bytes
    assert objects(bucket) == before, "a dry run changed the bucket"

    rc, output = retention_run()
    assert rc == 0, output[-3000:]
    assert recap(output)["registry"]["changed"] == 1
    report = latest_report(server, dry_run=False)
    after = objects(bucket)
    gone = {key: size for key, size in before.items() if key not in after}
    # Exactly the blobs of t01 and t03 (and their manifests) left the bucket.
    gone_blobs = {key.split("/")[-2] for key in gone if key.startswith("docker/registry/v2/blobs/")}
    only_deleted = set(history["t01"]["blobs"]) | set(history["t03"]["blobs"])
    assert gone_blobs == {digest.split(":")[1] for digest in only_deleted}
    assert sum(s for k, s in gone.items() if "/blobs/" in k) == expected_bytes
    assert report["gc"]["bytes_freed"] == expected_bytes
    # The deleted tags' objects are gone from the bucket; the others' are there.
    for repository, tag in tags:
        prefix = "docker/registry/v2/repositories/%s/_manifests/tags/%s/" % (repository, tag)
        present = any(key.startswith(prefix) for key in after)
        assert present == ((repository, tag) not in DELETED), tag

    user, password = credentials("client-b")
    for (repository, tag), _name in sorted(tags.items()):
        url = "https://%s/v2/%s/manifests/%s" % (registry, repository, tag)
        status = http(client_b, url, user, password, "HEAD", {"Accept": MANIFEST_TYPES})["status"]
        assert status == (404 if (repository, tag) in DELETED else 200), (tag, status)
    pull_by_digest(client_b, registry, REPOSITORY, history["A"]["digest"])  # t02's, via t05

    rc, output = retention_run()
    assert rc == 0, output[-3000:]
    assert recap(output)["registry"]["changed"] == 0
