"""A registry whose blobs are in S3, its host lost and restored (after test_s3.py and
test_s3_gc_lock.py).

What a backup holds here is the deployment's state (the CA and its key, certificates, users,
the http secret, settings); the bucket is the store, and every backup also copies it to a
second bucket (rclone). The host is destroyed with its volumes, a new one of the same name
is restored, and clients onboarded before the loss, untouched since, pull the bucket's
images again. It does not depend on the registry's line: it runs once, on 3.x.
"""

from __future__ import annotations

import json

import pytest
from registry_helpers import (
    converge,
    leaked,
    line_independent,
    pull_and_check_digest,
    push_unique_image,
    replace_hosts,
    storage_s3,
)

pytestmark = line_independent
STATE: dict = {}
STATE_FILES = (
    "/opt/registry-pki/ca.crt",
    "/opt/registry-pki/ca.key",
    "/opt/registry/certs/server.crt",
    "/opt/registry/certs/server.key",
    "/opt/registry/security/htpasswd",
    "/opt/registry/security/http_secret",
    "/opt/registry/config/config.yml",
)
STATE_SUMS = "sha256sum " + " ".join(STATE_FILES)


@pytest.fixture(scope="module")
def variables(inventory):
    return inventory.get_variables("registry")


def store_objects(variables, bucket):
    """{key: size} of the registry's links and blobs in a bucket."""
    return {
        item.key: item.size
        for item in storage_s3(variables).Bucket(bucket).objects.all()
        if item.key.startswith(("docker/registry/v2/repositories/", "docker/registry/v2/blobs/"))
        and "/_uploads/" not in item.key
    }


def test_a_backup_keeps_the_state_and_copies_the_bucket(server, client_a, variables):
    STATE["pushed"] = push_unique_image(client_a, "registry:5000/s3/before-the-loss")
    STATE["state"] = server.check_output(STATE_SUMS)
    rc, output = converge("-vvv", "--diff", playbook="playbooks/backup.yml")
    assert rc == 0, output[-3000:]
    secrets = [variables["backup_password"], variables["s3_secret_key"]]
    assert leaked(secrets, output) == []
    record = json.loads(server.file("/var/lib/privreg/backup.json").content_string)
    assert record["result"] == "ok", record
    assert record["files"] > 0
    # The store is the bucket: nothing of it was staged on the host.
    assert server.run("ls -d /opt/registry/data/.privreg-backup-stage").rc != 0
    store = store_objects(variables, variables["s3_bucket"])
    assert any(key.endswith("/data") for key in store)  # blobs were pushed, so copied
    assert store_objects(variables, "storecopy") == store


def test_the_lost_host_is_restored_and_serves_the_buckets_images(
    server, client_a, client_b, registry
):
    replace_hosts("registry")
    assert server.run("test -e /opt/registry").rc != 0
    rc, output = converge("--limit", "registry", playbook="playbooks/restore.yml")
    assert rc == 0, output[-5000:]
    # The same CA, certificate, users, http secret and settings as before the loss.
    assert server.check_output(STATE_SUMS) == STATE["state"]
    # Clients onboarded before the loss, untouched since: trust, login and digests hold.
    pull_and_check_digest(client_b, STATE["pushed"])
    pushed = push_unique_image(client_a, registry + "/s3/after-the-restore")
    pull_and_check_digest(client_b, pushed)
