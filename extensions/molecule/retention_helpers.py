"""Retention tests' shared parts (scenarios default and s3): a history of images pushed
through the registry's API, and the test's own arithmetic of the bytes a deletion frees."""

from __future__ import annotations

import json

# Run on a client (its trust store has the registry's CA): uploads blobs and manifests
# through the registry API, `pause` seconds before each tag's push; prints, per image, its
# manifest's digest and every blob with its size (the manifest's own included). An image
# may be an index of earlier ones (children) or more tags on an earlier one (retag).
PUSH_HISTORY = r"""
import base64, hashlib, io, json, os, sys, tarfile, time, urllib.parse, urllib.request
plan = json.load(sys.stdin)
auth = "Basic " + base64.b64encode(("%s:%s" % (plan["user"], plan["password"])).encode()).decode()
def call(method, url, body=None, content_type=None):
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", auth)
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response
def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()
def upload(repository, data):
    response = call("POST", "%s/v2/%s/blobs/uploads/" % (plan["base"], repository), b"")
    location = urllib.parse.urljoin(plan["base"], response.headers["Location"])
    separator = "&" if "?" in location else "?"
    call("PUT", location + separator + "digest=" + digest_of(data), data,
         "application/octet-stream")
    return digest_of(data)
def put_manifest(repository, reference, manifest, media_type):
    data = json.dumps(manifest, sort_keys=True).encode()
    call("PUT", "%s/v2/%s/manifests/%s" % (plan["base"], repository, reference), data, media_type)
    return digest_of(data), len(data)
def layer(size):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("payload")
        info.size, info.mode, info.mtime = size, 0o755, 0
        archive.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()
out = {}
for image in plan["images"]:
    repository = image["repository"]
    if "retag" in image:
        # More tags on an image pushed before, each a push of its own.
        earlier = out[image["retag"]]
        for tag in image["tags"]:
            time.sleep(plan.get("pause", 0))
            put_manifest(repository, tag, earlier["body"], earlier["media_type"])
        out[image["name"]] = earlier
        continue
    time.sleep(plan.get("pause", 0))
    if "children" in image:
        manifests, blobs = [], {}
        for child in image["children"]:
            manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": out[child]["digest"], "size": out[child]["size"],
                              "platform": {"os": "linux", "architecture": out[child]["arch"]}})
            blobs.update(out[child]["blobs"])
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": manifests}
        digest, size = put_manifest(repository, image["tags"][0], index,
                                    "application/vnd.oci.image.index.v1+json")
        media_type, body = "application/vnd.oci.image.index.v1+json", index
    else:
        data = layer(image["layer_bytes"])
        layer_digest = upload(repository, data)
        config = json.dumps({"architecture": image.get("arch", "amd64"), "os": "linux",
                             "created": image.get("created", "2026-12-01T00:00:00Z"),
                             "config": {"Cmd": ["/payload"]},
                             "rootfs": {"type": "layers", "diff_ids": [layer_digest]}},
                            sort_keys=True).encode()
        config_digest = upload(repository, config)
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config_digest, "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": layer_digest, "size": len(data)}]}
        media_type, body = "application/vnd.oci.image.manifest.v1+json", manifest
        digest, size = put_manifest(repository, image["tags"][0] if image["tags"] else
                                    digest_of(json.dumps(manifest, sort_keys=True).encode()),
                                    manifest, media_type)
        blobs = {layer_digest: len(data), config_digest: len(config)}
    blobs = dict(blobs, **{digest: size})
    for tag in image["tags"][1:]:
        time.sleep(plan.get("pause", 0))
        put_manifest(repository, tag, body, media_type)
    out[image["name"]] = {"digest": digest, "size": size, "blobs": blobs,
                          "arch": image.get("arch", "amd64"), "body": body,
                          "media_type": media_type}
print(json.dumps(out))
"""


def image(name, repository, tags, layer_bytes, **extra):
    """One image of a history: a layer of layer_bytes random bytes (arch, created...)."""
    return dict(name=name, repository=repository, tags=tags, layer_bytes=layer_bytes, **extra)


def push_history(client, registry, user, password, images, pause=0):
    """Push the images from client; {name: {digest, size, blobs: {digest: size}}}."""
    plan = {
        "base": "https://" + registry,
        "user": user,
        "password": password,
        "images": images,
        "pause": pause,
    }
    return json.loads(
        client.check_output("echo %s | python3 -c %s", json.dumps(plan), PUSH_HISTORY)
    )


def latest_report(server, dry_run):
    """The newest report of a dry or of a real run on the registry host (names sort by time)."""
    names = server.check_output("ls /var/lib/privreg/retention").split()
    name = [n for n in names if n.endswith("-dry-run.json") == dry_run][-1]
    return json.loads(server.check_output("cat /var/lib/privreg/retention/%s", name))


def tags_of(images):
    """(repository, tag) -> the name of the image it points to."""
    return {(i["repository"], tag): i["name"] for i in images for tag in i["tags"]}


def bytes_freed_by_deleting(pushed, tags, deleted):
    """The bytes of every blob that only deleted tags reach."""
    gone, stays = set(), set()
    for key, name in tags.items():
        (gone if key in deleted else stays).update(pushed[name]["blobs"])
    sizes = {}
    for entry in pushed.values():
        sizes.update(entry["blobs"])
    return sum(sizes[digest] for digest in gone - stays)
