"""module_utils.robots: expiry grammar, refused input, planning, the secret-free view."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.privreg.registry.plugins.module_utils import robots

ROBOT = {
    "name": "ci",
    "secret": "sixteen chars ok",
    "expires": "never",
    "access": [{"repository": "team/*", "actions": ["pull"]}],
}


def _hash(secret, cost):
    return "hash(%s,%d)" % (secret, cost)


def _plan(current, listed, prefix="robot$", cost=4):
    return robots.plan(
        current,
        listed,
        prefix,
        cost,
        hasher=_hash,
        verifier=lambda secret, hashed: hashed.startswith("hash(%s," % secret),
        cost_of=lambda hashed: int(hashed.rsplit(",", 1)[1][:-1]),
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1970-01-02", 86400),
        ("1970-01-01T01:00:00Z", 3600),
        (datetime.date(1970, 1, 3), 2 * 86400),  # YAML's reading of an unquoted date
        (datetime.datetime(1970, 1, 1, 0, 1, 0), 60),
        ("never", None),
    ],
)
def test_expiry_is_the_start_of_a_day_or_a_moment_in_utc(value, seconds):
    assert robots.expiry_seconds(value) == seconds


@pytest.mark.parametrize("value", ["tomorrow", "2027-13-01", "2027-06-30 18:00", "", None, 5])
def test_other_expiries_are_refused(value):
    with pytest.raises((ValueError, TypeError)):
        robots.expiry_seconds(value)


def test_problems_name_the_robot_never_its_secret():
    secret = "tiny\nsecret"
    problems = robots.robot_problems(
        [dict(ROBOT, secret=secret), dict(ROBOT), {"name": "x", "access": "all"}]
    )
    text = " ".join(problems)
    assert "registry_token_robots[0] (ci): the secret has a line break" in text
    assert "registry_token_robots[1]: name ci appears twice" in text
    assert "registry_token_robots[2] (x) has no expires" in text
    assert "registry_token_robots[2] (x): access must be a non-empty list" in text
    assert secret not in text
    assert "tiny" not in text


def test_a_secret_beyond_bcrypts_72_bytes_is_refused():
    problems = robots.robot_problems([dict(ROBOT, secret="é" * 40)])
    assert problems == [
        "registry_token_robots[0] (ci): the secret is longer than bcrypt's 72 bytes"
    ]


def test_valid_robots_have_no_problems():
    catalog = dict(ROBOT, name="lister", access=[{"catalog": True}], expires="2030-01-01")
    assert robots.robot_problems([ROBOT, catalog]) == []


def test_the_prefix_is_checked():
    assert robots.prefix_problem("robot$") is None
    assert robots.prefix_problem("robot-") is None
    assert robots.prefix_problem("robot:") is not None  # basic auth's separator
    assert robots.prefix_problem("") is not None


def test_plan_adds_keeps_rehashes_and_removes():
    new, added, updated, removed, rehashed = _plan({}, [ROBOT])
    assert added == ["robot$ci"]
    assert new["robot$ci"]["hash"] == "hash(sixteen chars ok,4)"
    kept = {key: value for key, value in ROBOT.items() if key != "secret"}
    again = _plan(new, [kept])
    assert again[0] == new
    assert again[1:] == ([], [], [], [])
    other = _plan(new, [dict(ROBOT, secret="another sixteen!")])
    assert other[2] == ["robot$ci"]
    assert other[4] == ["robot$ci"]
    gone = _plan(dict(new, **{"robot$old": new["robot$ci"]}), [ROBOT])
    assert gone[3] == ["robot$old"]


def test_a_new_cost_hashes_again():
    new = _plan({}, [ROBOT])[0]
    assert _plan(new, [ROBOT], cost=5)[4] == ["robot$ci"]


def test_the_view_shows_rules_and_expiry_but_no_hash():
    new = _plan({}, [dict(ROBOT, expires="2027-06-30")])[0]
    text = robots.view(new, marked=["robot$ci"])
    assert text == "robot$ci (secret set) expires 2027-06-30T00:00:00Z\n  team/*: pull\n"
