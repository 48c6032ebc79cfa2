"""Docker, Podman and containerd clients pull by host name, with auth, what another client
pushed; insecure-mode clients share a plain-HTTP registry; that registry's Debian 12 host
got Docker from Docker's repository (a signed stand-in, docker-apt); state=absent takes the
registry out again and leaves everything else."""

from __future__ import annotations

import json
import re

import pytest
from cryptography import x509
from registry_helpers import (
    converge,
    pull_and_check_digest,
    push_unique_image,
    recap,
    test_host,
    unique_image,
)

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
def insecure_puller():
    return test_host("insecure-puller")


@pytest.fixture(scope="module")
def registry_http():
    return test_host("registry-http")


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


def test_a_second_insecure_client_pulls_what_the_first_pushed(insecure_client, insecure_puller):
    daemon = json.loads(insecure_puller.file("/etc/docker/daemon.json").content_string)
    assert daemon["insecure-registries"] == [PLAIN]
    pushed = push_unique_image(insecure_client, PLAIN + "/clients/plain-shared")
    pull_and_check_digest(insecure_puller, pushed)


# Docker's repository as the role adds it (repository_upstream.yml), per host and release.
UPSTREAM = "http://docker-apt/linux/debian"
UPSTREAM_HOSTS = {"registry-http": "bookworm", "insecure-puller": "trixie"}


@pytest.mark.parametrize("name", sorted(UPSTREAM_HOSTS))
def test_docker_came_from_the_upstream_repository(name):
    host, release = test_host(name), UPSTREAM_HOSTS[name]
    assert host.check_output(". /etc/os-release; echo $VERSION_CODENAME") == release
    source = host.file("/etc/apt/sources.list.d/docker.sources").content_string
    assert "URIs: %s\n" % UPSTREAM in source
    assert "Suites: %s\n" % release in source
    assert "Components: stable\n" in source
    assert "Signed-By: /etc/apt/keyrings/docker.asc\n" in source
    # The key the repository publishes beside its packages, as the role fetched it.
    served = host.check_output(
        "python3 -c 'import sys,urllib.request; "
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' %s",
        UPSTREAM + "/gpg",
    )
    assert host.file("/etc/apt/keyrings/docker.asc").content_string.strip() == served.strip()
    packages = ["docker-ce", "docker-ce-cli", "containerd.io"]
    if name == "registry-http":
        packages.append("docker-compose-plugin")
    for package in packages:
        policy = host.check_output("apt-cache policy %s", package)
        installed = re.search(r"Installed: (\S+)", policy).group(1)
        assert "privreg" in installed, policy
        # The installed version's line in the version table names docker-apt's suite.
        table = policy.split("Version table:", 1)[1]
        assert re.search(
            r"\*\*\* %s .*\n\s+\d+ %s %s/stable amd64 Packages"
            % (re.escape(installed), re.escape(UPSTREAM), release),
            table,
        ), policy
    # The engine and client running are the packages of Docker's names, not Debian's
    # (on Debian 12, docker.io, and so docker-ce, holds the client).
    owner = 'dpkg -S "$(command -v %s)"'
    assert host.check_output(owner % "dockerd").startswith("docker-ce: ")
    client = "docker-ce-cli" if release == "trixie" else "docker-ce"
    assert host.check_output(owner % "docker").startswith(client + ": ")
    assert host.run("dpkg-query -W -f '${Status}' docker.io").stdout != "install ok installed"
    assert host.check_output("docker version --format '{{.Server.Version}}'")


def test_debian12_server_runs_the_registry_with_compose_from_upstream(registry_http):
    assert registry_http.check_output("cut -d. -f1 /etc/debian_version") == "12"
    # Debian 12's own archive has only compose v1: v2 came from docker-apt.
    version = registry_http.check_output("docker compose version")
    assert re.search(r"Docker Compose version v?2\.", version), version
    projects = json.loads(registry_http.check_output("docker compose ls --format json"))
    assert any(
        "/opt/registry/" in p["ConfigFiles"] and p["Status"].startswith("running") for p in projects
    ), projects


def apt_view(host, key_path):
    """What apt makes of docker-apt with a fresh state and the repository trusted under
    key_path only: the update's output, then docker-ce's policy."""
    return host.check_output(
        "set -e; k=%s; d=$(mktemp -d); mkdir -p $d/parts $d/lists/partial $d/cache; "
        'sed "s,^Signed-By: .*,Signed-By: $k," /etc/apt/sources.list.d/docker.sources '
        "> $d/parts/docker.sources; "
        "set -- -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$d/parts "
        "-o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache; "
        'apt-get "$@" update 2>&1 || true; apt-cache "$@" policy docker-ce; rm -rf $d',
        key_path,
    )


def test_apt_refuses_docker_apt_under_any_other_key(registry_http):
    listed = "%s bookworm/stable amd64 Packages" % UPSTREAM
    # The control: the same fresh apt state with the role's key lists the package there.
    assert listed in apt_view(registry_http, "/etc/apt/keyrings/docker.asc")
    registry_http.check_output(
        "python3 -c 'import sys,urllib.request; "
        'open("/tmp/stranger.asc", "wb").write(urllib.request.urlopen(sys.argv[1]).read())\' '
        "http://docker-apt/stranger.asc"
    )
    refused = apt_view(registry_http, "/tmp/stranger.asc")
    assert "NO_PUBKEY" in refused, refused
    assert listed not in refused, refused


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
