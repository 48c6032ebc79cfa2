"""docker_engine's upstream path renders a repository apt accepts, signed by the given key.

No network: the signing key is a throwaway key served from a file:// URL, and apt is only
asked to parse the sources, not to download from them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "privreg-it-upstream"
IMAGE = "privreg-test/debian-base:trixie"
MIRROR = "https://mirror.invalid/docker/linux"


def run(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def host():
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    run("docker", "run", "-d", "--name", CONTAINER, IMAGE, "sleep", "infinity")
    yield CONTAINER
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)


@pytest.fixture(scope="module")
def signing_key(host):
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, GNUPGHOME=home)
        run(
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "test <t@example.invalid>",
            "ed25519",
            "sign",
            "1d",
            env=env,
        )
        armored = run("gpg", "--armor", "--export", env=env).stdout
    key_file = Path(tempfile.mkdtemp()) / "docker.gpg"
    key_file.write_text(armored)
    run("docker", "cp", str(key_file), host + ":/tmp/docker.gpg")
    return armored


def converge(host, *extra):
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            host + ",",
            "-c",
            "community.docker.docker",
            str(ROOT / "tests/functional/upstream_repo.yml"),
            "-e",
            "docker_engine_upstream_key_url=file:///tmp/docker.gpg",
            "-e",
            "docker_engine_upstream_url=" + MIRROR,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_repository_and_key_are_rendered(host, signing_key):
    first = converge(host)
    assert first.returncode == 0, first.stdout + first.stderr
    sources = run("docker", "exec", host, "cat", "/etc/apt/sources.list.d/docker.sources").stdout
    fields = dict(line.split(": ", 1) for line in sources.splitlines() if ": " in line)
    assert fields["Types"] == "deb"
    assert fields["URIs"] == MIRROR + "/debian"
    assert fields["Suites"] == "trixie"
    assert fields["Components"] == "stable"
    assert fields["Architectures"] == "amd64"
    assert fields["Signed-By"] == "/etc/apt/keyrings/docker.asc"
    installed = run("docker", "exec", host, "cat", "/etc/apt/keyrings/docker.asc").stdout
    assert installed == signing_key
    mode = run("docker", "exec", host, "stat", "-c", "%a %U", "/etc/apt/keyrings/docker.asc").stdout
    assert mode.split() == ["644", "root"]

    # apt itself parses the definition: these are the files an update would fetch.
    uris = run("docker", "exec", host, "apt-get", "update", "--print-uris").stdout
    assert "'%s/debian/dists/trixie/InRelease'" % MIRROR in uris
    assert "'%s/debian/dists/trixie/stable/binary-amd64/Packages.xz'" % MIRROR in uris

    second = converge(host)
    assert second.returncode == 0
    assert "changed=0" in second.stdout
