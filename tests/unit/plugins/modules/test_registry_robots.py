"""registry_robots: hashes only, idempotence, expiry and removal, refused input, no secret
in any output."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import bcrypt
import pytest

from ansible_collections.privreg.registry.plugins.modules import registry_robots

CI_SECRET = "ci-builder secret, 32 characters"
DEPLOY_SECRET = "deployer's own secret value"
CI = {
    "name": "ci-builder",
    "secret": CI_SECRET,
    "expires": "2027-06-30",
    "access": [{"repository": "team/*", "actions": ["pull", "push"]}],
}
DEPLOYER = {
    "name": "deployer",
    "secret": DEPLOY_SECRET,
    "expires": "never",
    "access": [{"repository": "team/app", "actions": ["pull"]}, {"catalog": True}],
}


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "robots.json")


@pytest.fixture
def robots_module(run_module, path):
    def _run(robots, check_mode=False, diff=False, **extra):
        args = dict(path=path, robots=robots, cost=4)
        args.update(extra)
        return run_module(registry_robots.main, args, check_mode=check_mode, diff=diff)

    return _run


def stored(path):
    return json.loads(Path(path).read_text())["robots"]


def test_writes_hashes_expiries_and_the_robots_own_rules(robots_module, path):
    code, result = robots_module([CI, DEPLOYER])
    assert code == 0, result
    assert result["changed"]
    assert result["added"] == ["robot$ci-builder", "robot$deployer"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    robots = stored(path)
    ci = robots["robot$ci-builder"]
    # Checked with the bcrypt library itself, not with the code under test.
    assert bcrypt.checkpw(CI_SECRET.encode(), ci["hash"].replace("$2y$", "$2b$").encode())
    # 2027-06-30T00:00:00Z, worked out by hand: 57 years (14 of them leap) and 180 days.
    assert ci["expires"] == ((57 * 365 + 14) + 180) * 86400
    assert ci["access"] == [
        {"account": "robot$ci-builder", "repository": "team/*", "actions": ["pull", "push"]}
    ]
    assert robots["robot$deployer"]["expires"] is None
    text = Path(path).read_text()
    assert CI_SECRET not in text
    assert DEPLOY_SECRET not in text


def test_second_run_changes_nothing(robots_module, path):
    robots_module([CI, DEPLOYER])
    before = Path(path).read_text()
    result = robots_module([CI, DEPLOYER])[1]
    assert result["changed"] is False
    assert Path(path).read_text() == before


def test_a_robot_without_a_secret_keeps_its_hash(robots_module, path):
    robots_module([CI])
    before = stored(path)["robot$ci-builder"]["hash"]
    kept = dict(CI)
    del kept["secret"]
    result = robots_module([dict(kept, expires="2028-01-01")])[1]
    assert result["updated"] == ["robot$ci-builder"]
    assert stored(path)["robot$ci-builder"]["hash"] == before


def test_a_new_robot_without_a_secret_is_refused(robots_module, path):
    new = dict(CI)
    del new["secret"]
    code, result = robots_module([new])
    assert code == 1
    assert "not on the host yet and has no secret" in result["msg"]
    assert not os.path.exists(path)


def test_a_changed_secret_is_hashed_again(robots_module, path):
    robots_module([CI])
    result = robots_module([dict(CI, secret="another secret of some length")], diff=True)[1]
    assert result["updated"] == ["robot$ci-builder"]
    assert "robot$ci-builder (secret set)" in result["diff"]["after"]


def test_a_robot_left_out_is_removed(robots_module, path):
    robots_module([CI, DEPLOYER])
    result = robots_module([DEPLOYER])[1]
    assert result["removed"] == ["robot$ci-builder"]
    assert list(stored(path)) == ["robot$deployer"]


def test_check_mode_writes_nothing(robots_module, path):
    result = robots_module([CI], check_mode=True)[1]
    assert result["changed"]
    assert result["added"] == ["robot$ci-builder"]
    assert not os.path.exists(path)


def test_the_prefix_names_the_accounts(robots_module, path):
    result = robots_module([CI], prefix="robot-")[1]
    assert result["robots"] == ["robot-ci-builder"]


@pytest.mark.parametrize(
    ("robot", "fragment"),
    [
        (dict(CI, name="CI"), "name 'CI' must be 1-64 lower-case"),
        (dict(CI, expires="30.06.2027"), "expires '30.06.2027' is not a date"),
        (dict(CI, expires="2027-02-30"), "expires '2027-02-30' is not a date"),
        (dict(CI, secret="x7q!"), "secret is shorter than 16 characters"),
        (dict(CI, access=[]), "access must be a non-empty list"),
        (dict(CI, access=[{"repository": "${account}/*", "actions": ["push"]}]), "${account}"),
        (dict(CI, access=[{"repository": "team/*", "actions": ["write"]}]), "actions must be"),
        (dict(CI, access=[{"repository": "team/*", "account": "alice"}]), "unknown key(s) account"),
    ],
)
def test_refused_input_names_the_robot_and_changes_nothing(robots_module, path, robot, fragment):
    code, result = robots_module([robot])
    assert code == 1
    assert fragment in result["msg"], result["msg"]
    assert "robots[0]" in result["msg"]
    assert not os.path.exists(path)


def test_no_secret_reaches_the_result_or_the_diff(robots_module, path):
    planted = "planted secret: it must not leak"
    code, result = robots_module([dict(CI, secret=planted)], diff=True)
    assert code == 0
    rendered = json.dumps(result)
    for form in (planted, json.dumps(planted)[1:-1], planted.replace(":", "\\u003a")):
        assert form not in rendered
    # The check is shown to catch a leak: the planted value in the result is found.
    assert planted in json.dumps(dict(result, leaked=planted))
    assert "$2" not in result["diff"]["after"]  # nor a hash
