"""Docker, Podman and containerd clients pull by host name, with auth, what another client
pushed; an insecure-mode client works against a plain-HTTP registry; state=absent takes
the registry out again and leaves everything else."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from registry_helpers import converge, push_unique_image, recap, test_host, unique_image

REGISTRY = "registry:5000"
PLAIN = "registry-http:5000"
CTR = "ctr --namespace default"
HOSTS_DIR = "--hosts-dir /etc/containerd/certs.d"


@pytest.fixture(scope="module")
def docker_client():
    return test_host("docker-client")


@pytest.fixture(scope="module")
def podman_client():
    return test_host("podman-client")


@pytest.fixture(scope="module")
def containerd_client():
    return test_host("containerd-client")


@pytest.fixture(scope="module")
def insecure_client():
    return test_host("insecure-client")


@pytest.fixture(scope="module")
def ctr_user(credentials):
    return "%s:%s" % credentials("containerd-client")


@pytest.fixture(scope="module")
def from_docker(docker_client):
    """An image the Docker client pushed (it is logged in as 'puller')."""
    pushed = push_unique_image(docker_client, REGISTRY + "/clients/from-docker")
    return pushed["reference"], pushed["digest"]


@pytest.fixture(scope="module")
def from_podman(podman_client):
    """An image the Podman client pushed (it is logged in through its auth file), and the
    digest of the manifest it pushed."""
    reference = REGISTRY + "/clients/from-podman:1"
    podman_client.check_output(
        "set -e; d=$(mktemp -d); echo podman $(date +%%s%%N) > $d/payload; "
        "tar -C $d -cf - payload | podman import - %s >/dev/null; rm -rf $d",
        reference,
    )
    podman_client.check_output("podman push --digestfile /tmp/from-podman.digest %s", reference)
    digest = podman_client.file("/tmp/from-podman.digest").content_string.strip()
    assert digest.startswith("sha256:"), digest
    return reference, digest


def test_runtimes_were_detected(docker_client, podman_client, containerd_client):
    # Nothing in the scenario names a runtime: each client got what it already had.
    assert podman_client.file(
        "/etc/containers/registries.conf.d/50-privreg-registry_5000.conf"
    ).exists
    assert not podman_client.exists("dockerd")
    assert containerd_client.file("/etc/containerd/certs.d/registry:5000/hosts.toml").exists
    assert not containerd_client.exists("dockerd")
    assert docker_client.file("/etc/docker/certs.d/registry:5000/ca.crt").exists


_TLS_PROBE = r"""
import ssl, sys, urllib.error, urllib.request
directory = "/etc/docker/certs.d/registry:5000/"
context = ssl.create_default_context(cafile=directory + "ca.crt")
if sys.argv[1] == "with-cert":
    context.load_cert_chain(directory + "client.cert", directory + "client.key")
try:
    urllib.request.urlopen("https://registry:5000/v2/", context=context, timeout=10)
except urllib.error.HTTPError as exc:
    print(exc.code)
except (urllib.error.URLError, ssl.SSLError, OSError) as exc:
    print("refused:", getattr(exc, "reason", exc))
"""


def test_mutual_tls_refuses_a_client_without_certificate(docker_client):
    without = docker_client.check_output("python3 -c %s without-cert", _TLS_PROBE)
    assert without.startswith("refused:")
    # The same request with the host's client certificate reaches the registry's auth.
    assert docker_client.check_output("python3 -c %s with-cert", _TLS_PROBE) == "401"


def test_every_tls_client_got_its_own_certificate(docker_client, podman_client, containerd_client):
    for client, path in (
        (docker_client, "/etc/docker/certs.d/registry:5000/client"),
        (podman_client, "/etc/containers/certs.d/registry:5000/client"),
        (containerd_client, "/etc/containerd/certs.d/registry:5000/client"),
    ):
        assert client.file(path + ".key").mode == 0o600
        pem = client.file(path + ".cert").content_string.encode()
        subject = x509.load_pem_x509_certificate(pem).subject.rfc4514_string()
        assert subject == "CN=" + client.backend.name.replace("privreg-mol-clients-", "")
    hosts = containerd_client.file(
        "/etc/containerd/certs.d/registry:5000/hosts.toml"
    ).content_string
    assert "client = [[" in hosts


def test_podman_pulls_what_docker_pushed(podman_client, from_docker):
    reference, digest = from_docker
    podman_client.check_output("podman pull %s", reference)
    digests = podman_client.check_output(
        "podman image inspect --format '{{.Digest}}' %s", reference
    )
    assert digest in digests


def test_containerd_pulls_what_docker_pushed_through_hosts_toml(
    containerd_client, ctr_user, from_docker
):
    reference, digest = from_docker
    hosts = containerd_client.file(
        "/etc/containerd/certs.d/registry:5000/hosts.toml"
    ).content_string
    assert 'server = "https://registry:5000"' in hosts
    assert 'ca = "/etc/containerd/certs.d/registry:5000/ca.crt"' in hosts
    assert "skip_verify" not in hosts
    out = containerd_client.check_output(
        CTR + " images pull " + HOSTS_DIR + " --user %s %s", ctr_user, reference
    )
    assert digest in out or digest in containerd_client.check_output(CTR + " images ls")


# An OCI image archive (argv[1]) whose layer exists nowhere else: a payload unique to this
# run. Prints the digests of its manifest and layer.
OCI_ARCHIVE = r"""
import hashlib, io, json, sys, tarfile, time
def blob(media_type, data):
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data)}
def tar(members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()
layer = tar([("payload", ("containerd %d\n" % time.time_ns()).encode())])
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [blob("", layer)["digest"]]}}).encode()
manifest = json.dumps({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": blob("application/vnd.oci.image.config.v1+json", config),
    "layers": [blob("application/vnd.oci.image.layer.v1.tar", layer)]}).encode()
entry = blob("application/vnd.oci.image.manifest.v1+json", manifest)
entry["annotations"] = {"org.opencontainers.image.ref.name": "1"}
index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
members = [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index)]
members += [("blobs/sha256/" + blob("", d)["digest"][7:], d) for d in (layer, config, manifest)]
with open(sys.argv[1], "wb") as out:
    out.write(tar(members))
print(json.dumps({"manifest": entry["digest"], "layer": blob("", layer)["digest"]}))
"""


def test_containerd_uploads_its_own_blobs_and_docker_pulls_them(
    containerd_client, docker_client, ctr_user
):
    """An image only the containerd host has (a layer made here, this run): its push
    uploads every blob itself, and Docker on another host pulls that very manifest."""
    name = REGISTRY + "/clients/from-containerd"
    built = json.loads(
        containerd_client.check_output("python3 -c %s /root/from-containerd.tar", OCI_ARCHIVE)
    )
    containerd_client.check_output(
        CTR + " images import --no-unpack --base-name %s /root/from-containerd.tar", name
    )
    containerd_client.check_output(
        CTR + " images push " + HOSTS_DIR + " --user %s %s:1", ctr_user, name
    )
    docker_client.check_output("docker pull %s:1", name)
    repo_digests = json.loads(
        docker_client.check_output(
            "docker image inspect --format '{{json .RepoDigests}}' %s:1", name
        )
    )
    assert repo_digests == ["%s@%s" % (name, built["manifest"])], repo_digests
    # The layer Docker unpacked is the one made on the containerd host.
    history = docker_client.check_output(
        "docker image inspect --format '{{json .RootFS.Layers}}' %s:1", name
    )
    assert json.loads(history) == [built["layer"]]


def test_containerd_cri_has_the_credentials(containerd_client):
    config = containerd_client.file("/etc/containerd/config.toml")
    assert config.mode == 0o600
    text = config.content_string
    assert 'config_path = "/etc/containerd/certs.d"' in text
    assert '[plugins."io.containerd.grpc.v1.cri".registry.configs."registry:5000".auth]' in text
    # Debian's own settings are still there.
    assert 'bin_dir = "/usr/lib/cni"' in text


def test_docker_pulls_what_podman_pushed(docker_client, from_podman):
    reference, digest = from_podman
    docker_client.check_output("docker pull %s", reference)
    pulled = docker_client.check_output(
        "docker image inspect --format '{{json .RepoDigests}}' %s", reference
    )
    assert "%s@%s" % (reference.rsplit(":", 1)[0], digest) in json.loads(pulled), pulled


def test_docker_client_kept_its_own_settings(docker_client):
    daemon = json.loads(docker_client.file("/etc/docker/daemon.json").content_string)
    assert daemon["log-driver"] == "local"
    assert daemon["registry-mirrors"] == ["https://mirror.invalid"]
    assert daemon["insecure-registries"] == ["legacy.invalid:5000"]
    assert docker_client.check_output("docker info --format '{{.LoggingDriver}}'") == "local"


def test_insecure_client_uses_the_plain_http_registry(insecure_client):
    daemon = json.loads(insecure_client.file("/etc/docker/daemon.json").content_string)
    assert daemon["insecure-registries"] == ["legacy.invalid:5000", PLAIN]
    assert daemon["log-driver"] == "local"
    info = insecure_client.check_output(
        "docker info --format '{{json .RegistryConfig.IndexConfigs}}'"
    )
    assert json.loads(info)[PLAIN]["Secure"] is False
    reference = unique_image(insecure_client, PLAIN + "/clients/plain")[0]
    insecure_client.check_output("docker push %s", reference)
    insecure_client.check_output("docker rmi %s && docker pull %s", reference, reference)


def test_plain_http_registry_still_wants_a_password(insecure_client):
    # No certificate to check, but the password is: an anonymous request is refused.
    out = insecure_client.check_output(
        'python3 -c "import urllib.request,urllib.error\n'
        "try: urllib.request.urlopen('http://%s/v2/_catalog')\n"
        'except urllib.error.HTTPError as e: print(e.code)"',
        PLAIN,
    )
    assert out == "401"


def test_absent_takes_the_registry_out_and_keeps_the_rest(
    docker_client, podman_client, containerd_client, insecure_client, ctr_user, from_docker
):
    reference = from_docker[0]
    rc, output = converge(
        "--limit",
        "docker-client,podman-client,containerd-client,insecure-client",
        "-e",
        "registry_client_state=absent",
    )
    assert rc == 0, output
    assert set(recap(output)) == {
        "docker-client",
        "podman-client",
        "containerd-client",
        "insecure-client",
    }

    docker_client.run("docker rmi %s", reference)
    pull = docker_client.run("docker pull %s", reference)
    assert pull.rc != 0
    assert "x509" in pull.stderr or "certificate" in pull.stderr
    daemon = json.loads(docker_client.file("/etc/docker/daemon.json").content_string)
    assert daemon == {
        "log-driver": "local",
        "registry-mirrors": ["https://mirror.invalid"],
        "insecure-registries": ["legacy.invalid:5000"],
    }
    assert not docker_client.file("/etc/docker/certs.d/registry:5000").exists
    assert REGISTRY not in docker_client.file("/root/.docker/config.json").content_string

    podman_client.run("podman rmi %s", reference)
    pull = podman_client.run("podman pull %s", reference)
    assert pull.rc != 0
    assert "x509" in pull.stderr or "certificate" in pull.stderr
    assert not podman_client.file(
        "/etc/containers/registries.conf.d/50-privreg-registry_5000.conf"
    ).exists
    auth = json.loads(podman_client.file("/root/.config/containers/auth.json").content_string)
    assert REGISTRY not in auth["auths"]

    containerd_client.run(CTR + " images rm %s", reference)
    pull = containerd_client.run(
        CTR + " images pull " + HOSTS_DIR + " --user %s %s", ctr_user, reference
    )
    assert pull.rc != 0
    assert "x509" in pull.stderr or "certificate" in pull.stderr
    config = containerd_client.file("/etc/containerd/config.toml").content_string
    assert 'config_path = "/etc/containerd/certs.d"' in config
    assert "registry:5000" not in config
    assert 'bin_dir = "/usr/lib/cni"' in config

    daemon = json.loads(insecure_client.file("/etc/docker/daemon.json").content_string)
    assert daemon["insecure-registries"] == ["legacy.invalid:5000"]
    assert daemon["log-driver"] == "local"
    plain = insecure_client.run("docker pull %s/clients/plain:none", PLAIN)
    assert plain.rc != 0
    assert "HTTP response to HTTPS client" in plain.stderr

    # The system trust store no longer holds the CA either.
    assert not docker_client.file(
        "/usr/local/share/ca-certificates/privreg-registry-5000.crt"
    ).exists
