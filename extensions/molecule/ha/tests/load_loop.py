"""A load loop that runs on a client host, through the balancer, until a stop file appears.

It pushes new images (a random layer, a config, an OCI manifest: the requests `docker push`
makes) and pulls earlier ones by digest, checking every byte's SHA-256. A failed push is
tried again, as Docker does, up to PUSH_ATTEMPTS times; a pull is not. It prints a JSON
report: counts, failures with their reasons, and every image it pushed.

Usage: python3 load_loop.py BASE_URL CA_FILE USER PASSWORD STOP_FILE MAX_SECONDS
       python3 load_loop.py check|delete|gone BASE_URL CA_FILE USER PASSWORD IMAGES_JSON
         (for every image of a report's list: check pulls it, delete deletes its manifest,
          gone asks for its blobs and expects 404; prints the failures, [] when none)
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

PUSH_ATTEMPTS = 4
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TIMEOUT = 30
# A pause after each round (a push and two pulls, about 11 requests): load that never
# stops, paced so that a scenario beside it on a 2-core CI machine keeps its own pace.
ROUND_PAUSE = 0.5


class Failed(Exception):
    pass


# Requests made and answered with an error or not at all, over the whole run.
COUNTS = {"requests": 0, "requests_failed": 0}


def request(base, context, auth, method, path, body=None, headers=None):
    """One request on a new connection (the balancer picks a replica for each)."""
    COUNTS["requests"] += 1
    url = urllib.parse.urlsplit(path if path.startswith("https://") else base + path)
    connection = http.client.HTTPSConnection(
        url.hostname, url.port, context=context, timeout=TIMEOUT
    )
    target = url.path + ("?" + url.query if url.query else "")
    try:
        connection.request(
            method, target, body=body, headers=dict(headers or {}, Authorization=auth)
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    except (OSError, http.client.HTTPException) as exc:
        COUNTS["requests_failed"] += 1
        raise Failed("%s %s: %r" % (method, url.path, exc)) from exc
    finally:
        connection.close()


def expect(result, statuses, what):
    status, headers, body = result
    if status not in statuses:
        COUNTS["requests_failed"] += 1
        raise Failed("%s: %s %s" % (what, status, body[:200].decode(errors="replace")))
    return headers, body


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(call, repository, data):
    headers = expect(call("POST", "/v2/%s/blobs/uploads/" % repository), (202,), "POST upload")[0]
    location = headers.get("Location") or headers.get("location")
    separator = "&" if "?" in location else "?"
    expect(
        call(
            "PUT",
            location + separator + "digest=" + digest_of(data),
            data,
            {"Content-Type": "application/octet-stream"},
        ),
        (201,),
        "PUT blob",
    )


def push(call, repository, serial):
    layer = os.urandom(32 * 1024)
    config = (
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
            sort_keys=True,
        ).encode()
        + (" %d" % serial).encode()
    )
    for blob in (layer, config):
        upload(call, repository, blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    tag = "load-%d" % serial
    expect(
        call(
            "PUT", "/v2/%s/manifests/%s" % (repository, tag), manifest, {"Content-Type": MANIFEST}
        ),
        (201,),
        "PUT manifest",
    )
    return {
        "repository": repository,
        "tag": tag,
        "digest": digest_of(manifest),
        "blobs": [digest_of(layer), digest_of(config)],
        "sizes": [len(layer), len(config)],
    }


def pull(call, image):
    body = expect(
        call(
            "GET",
            "/v2/%s/manifests/%s" % (image["repository"], image["digest"]),
            None,
            {"Accept": MANIFEST},
        ),
        (200,),
        "GET manifest",
    )[1]
    if digest_of(body) != image["digest"]:
        raise Failed("manifest %s came back with digest %s" % (image["digest"], digest_of(body)))
    for blob in image["blobs"]:
        data = expect(
            call("GET", "/v2/%s/blobs/%s" % (image["repository"], blob)), (200,), "GET blob"
        )[1]
        if digest_of(data) != blob:
            raise Failed("blob %s came back as %s" % (blob, digest_of(data)))


def caller(base, ca_file, user, password):
    context = ssl.create_default_context(cafile=ca_file)
    auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def call(method, path, body=None, headers=None):
        return request(base, context, auth, method, path, body, headers)

    return call


def delete(call, image):
    expect(
        call("DELETE", "/v2/%s/manifests/%s" % (image["repository"], image["digest"])),
        (202,),
        "DELETE manifest",
    )


def gone(call, image):
    for blob in image["blobs"]:
        expect(
            call("GET", "/v2/%s/blobs/%s" % (image["repository"], blob)), (404,), "GET swept blob"
        )


def for_each_image(action, images_file, call):
    """Four images at a time: each request waits on its own TLS handshake and round trips."""

    def one(image):
        try:
            action(call, image)
        except Failed as exc:
            return str(exc)
        return None

    with open(images_file) as handle:
        images = json.load(handle)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        failures = [failure for failure in pool.map(one, images) if failure is not None]
    print(json.dumps(failures))


def main():
    actions = {"check": pull, "delete": delete, "gone": gone}
    if sys.argv[1] in actions:
        for_each_image(actions[sys.argv[1]], sys.argv[6], caller(*sys.argv[2:6]))
        return
    base, ca_file, user, password, stop_file, max_seconds = sys.argv[1:7]
    call = caller(base, ca_file, user, password)
    report = {
        "pushes": 0,
        "push_attempts_failed": 0,
        "pushes_failed": 0,
        "pulls": 0,
        "pulls_failed": 0,
        "errors": [],
        "images": [],
    }
    deadline = time.monotonic() + float(max_seconds)
    serial = int(time.time() * 1000)
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        serial += 1
        report["pushes"] += 1
        for attempt in range(PUSH_ATTEMPTS):
            try:
                report["images"].append(push(call, "load/loop", serial))
                break
            except Failed as exc:
                report["push_attempts_failed"] += 1
                report["errors"].append("push %d attempt %d: %s" % (serial, attempt + 1, exc))
                time.sleep(1)
        else:
            report["pushes_failed"] += 1
        # The image pushed two rounds ago and the first: old and new data both readable.
        for image in {id(i): i for i in report["images"][-3:-2] + report["images"][:1]}.values():
            report["pulls"] += 1
            try:
                pull(call, image)
            except Failed as exc:
                report["pulls_failed"] += 1
                report["errors"].append("pull %s: %s" % (image["digest"], exc))
        time.sleep(ROUND_PAUSE)
    report.update(COUNTS)
    report["errors"] = report["errors"][:40]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
