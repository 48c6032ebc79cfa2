"""Robot accounts (registry_token_robots, molecule.yml): CI pushes and pulls with a robot's
own rules and nothing else; a secret the role makes reaches the controller only; a robot
past its expiry, or removed, is refused at its next sign-in without a restart of the
service; no robot secret reaches the output of a verbose run with diffs."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from conftest import AFTER_ROTATION, REGISTRY, ask, granted
from conftest import ROBOT_SECRETS as SECRETS
from registry_helpers import converge, leaked, test_host, unique_image

MADE = (
    Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "robot-secrets" / "registry" / "made.secret"
)
TEAM_PULL = "repository:team/robot-built:pull"


@pytest.fixture(scope="module")
def caller():
    """A host of its own for token requests (failed logins count per address)."""
    return test_host("containerd-client")


def test_a_robot_pushes_its_scope_and_another_host_pulls_it_by_digest(client):
    puller = test_host("podman-client")
    config = "/root/docker-robot-ci"
    client.check_output(
        "mkdir -p %s && echo %s | DOCKER_CONFIG=%s docker login -u %s --password-stdin %s",
        config,
        SECRETS["robot$ci"],
        config,
        "robot$ci",
        REGISTRY,
    )
    reference = unique_image(client, REGISTRY + "/team/robot-built")[0]
    pushed = client.check_output("DOCKER_CONFIG=%s docker push %s", config, reference)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed).group(1)
    puller.check_output(
        "echo %s | podman login --authfile /root/robot-auth.json -u %s --password-stdin %s",
        SECRETS["robot$ci"],
        "robot$ci",
        REGISTRY,
    )
    puller.check_output("podman pull --authfile /root/robot-auth.json %s", reference)
    assert digest in puller.check_output(
        "podman image inspect --format '{{.Digest}}' %s", reference
    )
    # Outside its rules: no push into a person's namespace, and no delete in its own scope.
    elsewhere = unique_image(client, REGISTRY + "/alice/robot-built")[0]
    refused = client.run("DOCKER_CONFIG=%s docker push %s", config, elsewhere)
    assert refused.rc != 0
    assert "denied" in refused.stderr or "unauthorized" in refused.stderr, refused.stderr


def test_a_robot_gets_only_its_own_rules(caller):
    access = granted(
        ask(
            caller,
            "robot$ci",
            SECRETS["robot$ci"],
            "repository:team/app:pull,push,delete",
            "repository:public/app:pull",  # people (and anonymous) may pull public/*
        )
    )
    assert access[("repository", "team/app")] == ["pull", "push"]
    assert access[("repository", "public/app")] == []


def test_the_secret_the_role_made_is_on_the_controller_only_and_signs_in(caller, server):
    mode = stat.S_IMODE(MADE.stat().st_mode)
    assert mode == 0o600, oct(mode)
    secret = MADE.read_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{43}", secret)  # 256 bits
    assert granted(ask(caller, "robot$made", secret, TEAM_PULL))[
        ("repository", "team/robot-built")
    ] == ["pull"]
    robots = server.file("/opt/registry/token/robots.json")
    assert (robots.user, robots.group, robots.mode) == ("root", "registry-token", 0o640)
    assert leaked([secret, *SECRETS.values()], robots.content_string) == []


def test_a_robot_past_its_expiry_is_refused(caller, server):
    assert ask(caller, "robot$expired", SECRETS["robot$expired"], TEAM_PULL)["status"] == 401
    journal = server.check_output("journalctl -u registry-token --since '-5 min' --no-pager -o cat")
    assert "login: robot robot$expired expired at 2020-01-01T00:00:00Z" in journal


def test_robot_changes_apply_at_the_next_sign_in_and_no_secret_is_printed(caller, server):
    """One converge with -vvv --diff: made is removed, expired gets a new secret and a later
    date. Both count from the next sign-in, with the same service process."""
    made = MADE.read_text().strip()
    renewed = "molecule robot: expired, renewed"
    robots = [
        {
            "name": "ci",
            "secret": SECRETS["robot$ci"],
            "expires": "never",
            "access": [{"repository": "team/*", "actions": ["pull", "push"]}],
        },
        {
            "name": "expired",
            "secret": renewed,
            "expires": "2099-01-01",
            "access": [{"repository": "team/*", "actions": ["pull"]}],
        },
    ]
    pid = server.check_output("systemctl show -p MainPID --value registry-token")
    rc, output = converge(
        "--limit",
        "registry",
        "-vvv",
        "--diff",
        "-e",
        json.dumps(dict(AFTER_ROTATION, registry_token_robots=robots)),
    )
    assert rc == 0, output[-3000:]
    assert "robot$made" in output  # the diff names the robot removed
    assert leaked([made, renewed, *SECRETS.values()], output) == []
    assert server.check_output("systemctl show -p MainPID --value registry-token") == pid
    assert ask(caller, "robot$made", made, TEAM_PULL)["status"] == 401
    assert ask(caller, "robot$expired", SECRETS["robot$expired"], TEAM_PULL)["status"] == 401
    access = granted(ask(caller, "robot$expired", renewed, TEAM_PULL))
    assert access[("repository", "team/robot-built")] == ["pull"]
