"""The registry on a real S3 server, set by variable overrides only, and garbage
collection that frees exactly the unreferenced blobs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from registry_helpers import (
    SERVER_STATE,
    converge,
    http,
    leaked,
    manifest_digest,
    pull_and_check_digest,
    push_unique_image,
    recap,
    unique_image,
)

ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", Path.cwd() / "artifacts"))


def objects(bucket):
    return {obj.key: obj.size for obj in bucket.objects.all()}


def blob_key(digest):
    algorithm, hexdigest = digest.split(":")
    return "docker/registry/v2/blobs/%s/%s/%s/data" % (algorithm, hexdigest[:2], hexdigest)


def layer_digests(host, registry, repository, tag, user, password):
    url = "https://%s/v2/%s/manifests/%s" % (registry, repository, tag)
    manifest = json.loads(http(host, url, user, password)["body"])
    return [layer["digest"] for layer in manifest["layers"]], manifest["config"]["digest"]


def test_empty_bucket_is_healthy(server, bucket):
    """Distribution issue 2292: an empty bucket must not make the registry unhealthy.
    The health interval is 2s with threshold 2 here, and converge plus idempotence ran
    far longer than that."""
    assert objects(bucket) == {}
    health = http(server, "http://127.0.0.1:5001/debug/health")
    assert health["status"] == 200, health
    assert json.loads(health["body"]) == {}


@pytest.fixture(scope="module")
def pushed(client_a, registry):
    return push_unique_image(client_a, registry + "/s3/hello")


def test_push_on_one_host_pull_on_another(client_b, pushed):
    pull_and_check_digest(client_b, pushed)


def test_blobs_are_in_the_bucket_and_not_on_disk(
    server, client_a, registry, credentials, pushed, bucket
):
    user, password = credentials("client-a")
    layers, config = layer_digests(client_a, registry, "s3/hello", pushed["tag"], user, password)
    stored = objects(bucket)
    digests = [*layers, config, pushed["digest"]]
    for digest in digests:
        assert blob_key(digest) in stored, digest
    # Nowhere on the registry host either (Docker's volumes included)...
    assert [found for digest in digests for found in blob_files(server, digest)] == []
    # ...which this search would show: a blob file planted where no registry keeps one.
    planted = "/root/planted/" + blob_key(pushed["digest"])
    server.check_output("mkdir -p %s && touch %s", planted.rsplit("/", 1)[0], planted)
    try:
        assert blob_files(server, pushed["digest"]) == [planted]
    finally:
        server.check_output("rm -rf /root/planted")


# One GET that does not follow a redirect: status, Location, the body's digest.
GET_NO_REDIRECT = r"""
import base64, hashlib, http.client, ssl, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
connection = http.client.HTTPSConnection(url.hostname, url.port, timeout=30,
                                         context=ssl.create_default_context())
credentials = base64.b64encode(sys.argv[2].encode()).decode()
connection.request("GET", url.path, headers={"Authorization": "Basic " + credentials})
response = connection.getresponse()
body = response.read()
print(response.status, response.getheader("Location") or "-",
      "sha256:" + hashlib.sha256(body).hexdigest())
"""


def test_the_registry_serves_blobs_itself_with_a_custom_endpoint(
    client_a, registry, credentials, pushed
):
    """With a custom S3 endpoint (which clients cannot be assumed to reach or trust)
    redirects are off by default: the registry answers a blob GET with the blob, not a
    307 to the store."""
    user, password = credentials("client-a")
    layers, _config = layer_digests(client_a, registry, "s3/hello", pushed["tag"], user, password)
    url = "https://%s/v2/s3/hello/blobs/%s" % (registry, layers[0])
    answer = client_a.check_output(
        "python3 -c %s %s %s", GET_NO_REDIRECT, url, "%s:%s" % (user, password)
    )
    assert answer.split() == ["200", "-", layers[0]], answer


def blob_files(host, digest):
    """Files anywhere on the host at a registry's path for the blob `digest`."""
    found = host.run(
        "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -path %s -print",
        "*/" + blob_key(digest),
    )
    return found.stdout.split()


def test_image_still_pulls_after_the_registry_restarts(server, client_b, pushed):
    server.check_output("docker restart registry")
    client_b.check_output("docker rmi %s", pushed["reference"])
    pull = client_b.run(
        "for i in $(seq 30); do docker pull %s && exit 0; sleep 1; done; exit 1",
        pushed["reference"],
    )
    assert pull.rc == 0, pull.stderr
    assert pushed["digest"] in pull.stdout


def test_wrong_s3_keys_fail_clearly_and_leave_the_registry_as_it_was(server, client_b, pushed):
    before = server.check_output(SERVER_STATE)
    rc, output = converge(
        "--limit", "registry", "-e", "registry_server_storage_s3_secretkey=not-the-key"
    )
    assert rc != 0
    assert "The registry cannot use the s3 storage" in output
    assert "Nothing was changed" in output
    assert "not-the-key" not in output
    assert recap(output)["registry"]["changed"] == 0
    assert server.check_output(SERVER_STATE) == before
    client_b.check_output(
        "docker rmi %s && docker pull %s", pushed["reference"], pushed["reference"]
    )


def build(host, reference, files):
    """A multi-layer image: one COPY layer per file, in order, built with no base image."""
    script = ["set -e", "d=$(mktemp -d)", "cd $d", "echo FROM scratch > Dockerfile"]
    for name, size, seed in files:
        # Content fixed by the seed: the same file gives the same layer in every image.
        script.append(
            "python3 -c \"import random,sys; random.seed('%s'); "
            'sys.stdout.buffer.write(random.randbytes(%d))" > %s' % (seed, size, name)
        )
        script.append("echo COPY %s /%s >> Dockerfile" % (name, name))
    script += ["DOCKER_BUILDKIT=0 docker build -q -t %s . >/dev/null" % reference, "rm -rf $d"]
    host.check_output("\n".join(script))


def test_garbage_collection_frees_only_unreferenced_blobs(
    server, client_a, client_b, registry, credentials, bucket
):
    user, password = credentials("client-a")
    keep, drop = registry + "/s3/gc:keep", registry + "/s3/gc:drop"
    shared = ("shared.bin", 2_000_000, "shared")
    build(client_a, keep, [shared])
    build(client_a, drop, [shared, ("unique.bin", 3_000_000, "unique")])
    for reference in (keep, drop):
        client_a.check_output("docker push %s", reference)
    keep_layers, keep_config = layer_digests(client_a, registry, "s3/gc", "keep", user, password)
    drop_layers, drop_config = layer_digests(client_a, registry, "s3/gc", "drop", user, password)
    shared_layer = keep_layers[0]
    assert drop_layers[0] == shared_layer
    unique_layer = drop_layers[1]

    digest = manifest_digest(client_a, registry, "s3/gc", "drop", user, password)
    url = "https://%s/v2/s3/gc/manifests/%s" % (registry, digest)
    assert http(client_a, url, user, password, "DELETE")["status"] == 202

    before = objects(bucket)
    assert blob_key(unique_layer) in before
    rc, output = converge(playbook="playbooks/gc.yml")
    assert rc == 0, output
    after = objects(bucket)

    assert blob_key(unique_layer) not in after
    assert blob_key(drop_config) not in after
    assert blob_key(shared_layer) in after
    assert blob_key(keep_config) in after
    freed = {key: size for key, size in before.items() if key not in after}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "s3-gc.json").write_text(
        json.dumps({"deleted_objects": freed, "bytes_freed": sum(freed.values())}, indent=2)
    )
    assert sum(freed.values()) >= 3_000_000

    client_b.check_output("docker rmi -f %s >/dev/null 2>&1 || true", keep)
    client_b.check_output("docker pull %s", keep)


def test_pushes_are_refused_while_frozen_and_accepted_after(server, client_a, registry):
    reference = unique_image(client_a, registry + "/s3/frozen")[0]
    # Collecting a writable registry is refused outright.
    refused = server.run("registry-gc collect")
    assert refused.rc == 1
    assert "refusing to collect" in refused.stdout
    server.check_output("registry-gc freeze")
    try:
        push = client_a.run("docker push %s", reference)
        assert push.rc != 0
        # The read-only registry answers 405 to the upload.
        assert "method not allowed" in (push.stdout + push.stderr).lower()
    finally:
        server.check_output("registry-gc thaw")
    status = json.loads(server.check_output("registry-gc status").splitlines()[-1])
    assert status["read_only"] is False
    client_a.check_output("docker push %s", reference)


def running_env(server):
    """The registry container's REGISTRY_* variables as the registry reads them (YAML)."""
    env = json.loads(server.check_output("docker inspect -f '{{json .Config.Env}}' registry"))
    pairs = (entry.split("=", 1) for entry in env if entry.startswith("REGISTRY_"))
    return {name: yaml.safe_load(value) for name, value in pairs}


def test_awkward_secrets_reach_the_registry_literally(server, inventory):
    """$, #, quotes, spaces and non-ASCII in the S3 secret: the running registry reads exactly
    the inventory's value (compose passes it literally, the registry parses it as YAML), and
    it works (every test above)."""
    secret = inventory.get_variables("registry")["s3_secret_key"]
    assert {"$", "#", "'", '"', " ", "ü"} <= set(secret)
    assert running_env(server)["REGISTRY_STORAGE_S3_SECRETKEY"] == secret


def test_a_storage_change_logs_no_secret_even_with_vvv_and_diff(
    server, client_a, client_b, registry, inventory
):
    """New S3 keys (awkward ones) go through the storage probe and into the registry, and
    no key, password (the backup repository's among them) or http secret reaches the output
    of a -vvv --diff run, in any rendering."""
    variables = inventory.get_variables("registry")
    new_keys = {
        "registry_server_storage_s3_accesskey": variables["s3_second_access_key"],
        "registry_server_storage_s3_secretkey": variables["s3_second_secret_key"],
    }
    rc, output = converge("-vvv", "--diff", "-e", json.dumps(new_keys))
    assert rc == 0, output[-3000:]
    assert recap(output)["registry"]["changed"] > 0
    assert running_env(server)["REGISTRY_STORAGE_S3_SECRETKEY"] == variables["s3_second_secret_key"]
    pushed = push_unique_image(client_a, registry + "/s3/after-key-change")
    pull_and_check_digest(client_b, pushed)
    http_secret = server.file("/opt/registry/security/http_secret").content_string.strip()
    secrets = [
        variables["s3_secret_key"],
        variables["s3_second_secret_key"],
        variables["backup_password"],
        http_secret,
        *(user["password"] for user in variables["registry_server_users"]),
    ]
    assert leaked(secrets, output) == []
    assert len(output) > 100_000  # -vvv really was on
    # The registry stays on the second keys: the next test's run goes back to the scenario's.


def test_a_storage_probe_left_by_an_interrupted_run_is_removed(server, inventory):
    """A run cut off while it tried storage settings leaves its throwaway registry; the next
    run removes it by its label, and probes the storage settings it brings (the scenario's
    keys again, after the last test's: the store accepts both)."""
    image = server.check_output("docker inspect -f '{{.Config.Image}}' registry")
    server.check_output(
        "docker run --detach --name leftover-probe --label privreg.storage-probe=registry %s",
        image,
    )
    rc, output = converge("--limit", "registry")
    assert rc == 0, output
    assert server.run("docker container inspect leftover-probe").rc != 0
    scenario_key = inventory.get_variables("registry")["s3_secret_key"]
    assert running_env(server)["REGISTRY_STORAGE_S3_SECRETKEY"] == scenario_key
