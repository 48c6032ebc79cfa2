"""The token service's access rules: what the first matching rule grants, and what is refused."""

from __future__ import annotations

import time

import pytest

from ansible_collections.privreg.registry.plugins.module_utils.token_acl import (
    acl_problems,
    grant,
    parse_scope,
)

GROUPS = {"admins": ["root-admin"], "readers": ["carol"]}
RULES = [
    {"group": "admins", "repository": "*", "actions": ["*"]},
    {"group": "admins", "catalog": True},
    {"account": "anonymous", "repository": "public/*", "actions": ["pull"]},
    {"group": "readers", "repository": "alice/*", "actions": ["pull"]},
    {"account": "mallory", "repository": "*", "actions": []},
    {"account": "*", "repository": "public/*", "actions": ["pull"]},
    {"account": "*", "repository": "${account}/*", "actions": ["pull", "push"]},
]


@pytest.mark.parametrize(
    ("account", "resource_type", "name", "requested", "expected"),
    [
        ("alice", "repository", "alice/app", ["pull", "push"], ["pull", "push"]),
        ("alice", "repository", "alice/team/app", ["push"], ["push"]),
        ("alice", "repository", "bob/app", ["pull", "push"], []),
        ("alice", "repository", "alice/app", ["delete"], []),
        # ${account} is the literal name: "alice" does not match "alice2/...".
        ("alice", "repository", "alice2/app", ["pull"], []),
        ("alice2", "repository", "alice2/app", ["pull"], ["pull"]),
        ("carol", "repository", "alice/app", ["pull", "push"], ["pull"]),
        ("carol", "repository", "carol/app", ["push"], ["push"]),
        ("anonymous", "repository", "alice/app", ["pull"], []),
        ("anonymous", "repository", "public/base", ["pull", "push"], ["pull"]),
        # '*' is any signed-in user, never the anonymous caller.
        ("anonymous", "repository", "anonymous/app", ["pull"], []),
        (
            "root-admin",
            "repository",
            "alice/app",
            ["pull", "push", "delete"],
            ["pull", "push", "delete"],
        ),
        ("root-admin", "registry", "catalog", ["*"], ["*"]),
        ("alice", "registry", "catalog", ["*"], []),
        # First match wins: mallory's empty rule comes before the ${account} rule.
        ("mallory", "repository", "mallory/app", ["pull"], []),
        ("alice", "unknown-type", "alice/app", ["pull"], []),
    ],
)
def test_the_first_matching_rule_decides(account, resource_type, name, requested, expected):
    assert grant(RULES, GROUPS, account, resource_type, name, requested) == expected


def test_a_user_name_with_glob_characters_stays_literal():
    rules = [{"account": "*", "repository": "${account}/*", "actions": ["pull"]}]
    assert grant(rules, {}, "a.b", "repository", "a.b/x", ["pull"]) == ["pull"]
    assert grant(rules, {}, "a.b", "repository", "axb/x", ["pull"]) == []


EVERYTHING = [{"account": "*", "repository": "*", "actions": ["pull"]}]


@pytest.mark.parametrize(
    "name",
    [
        "app\n",  # an anchored regex's $ took the trailing newline
        "Team/App",  # upper case
        "team//app",
        "/team/app",
        "team/app/",
        "team app",
        "host:5000/app",
        "a" * 256,  # one over distribution's limit
    ],
)
def test_a_name_the_registry_could_not_hold_is_granted_nothing(name):
    assert grant(EVERYTHING, {}, "alice", "repository", name, ["pull"]) == []
    rules = [{"account": "*", "repository": name.strip(), "actions": ["pull"]}]
    assert grant(rules, {}, "alice", "repository", name, ["pull"]) == []


def test_the_longest_name_the_registry_takes_is_matched():
    name = "/".join(["a" * 63] * 4)  # 255 characters
    assert grant(EVERYTHING, {}, "alice", "repository", name, ["pull"]) == ["pull"]


def test_a_long_name_against_many_globs_costs_no_time():
    """`*/*/*-prod` against a 1,500-character name took 0.09-0.35 s and 4,000 characters
    3 s here (cubic in the length), with 64 KB of POST body to choose names from; now
    the name's length refuses it first."""
    rules = [{"account": "*", "repository": "*/*/*-prod", "actions": ["pull"]}]
    names = ["a/" * 2000, "a/" * 127 + "a"]  # 4,000 characters; 255, the longest allowed
    started = time.perf_counter()
    for name in names:
        assert grant(rules, {}, "alice", "repository", name, ["pull"]) == []
    assert time.perf_counter() - started < 0.05


def test_a_question_mark_is_one_character():
    rules = [{"account": "*", "repository": "team-?/app", "actions": ["pull"]}]
    assert grant(rules, {}, "u", "repository", "team-a/app", ["pull"]) == ["pull"]
    assert grant(rules, {}, "u", "repository", "team-ab/app", ["pull"]) == []


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("repository:alice/app:pull,push", ("repository", "alice/app", ["pull", "push"])),
        ("repository:host:5000/app:pull", ("repository", "host:5000/app", ["pull"])),
        ("registry:catalog:*", ("registry", "catalog", ["*"])),
        ("repository:alice/app:", ("repository", "alice/app", [])),
        ("repository:alice/app", None),
        ("garbage", None),
    ],
)
def test_scopes_are_parsed_as_docker_sends_them(scope, expected):
    assert parse_scope(scope) == expected


def test_the_default_rules_are_valid():
    defaults = [
        {"group": "admins", "repository": "*", "actions": ["*"]},
        {"group": "admins", "catalog": True},
        {"account": "*", "repository": "${account}/*", "actions": ["pull", "push"]},
    ]
    assert acl_problems(defaults, {"admins": []}) == []
    assert acl_problems(RULES, GROUPS) == []


@pytest.mark.parametrize(
    ("rules", "groups", "fragment"),
    [
        ([{"repository": "*", "actions": ["pull"]}], {}, "exactly one of account"),
        (
            [{"account": "a", "group": "g", "repository": "*", "actions": ["pull"]}],
            {"g": []},
            "exactly one of account",
        ),
        (
            [{"group": "nobody", "repository": "*", "actions": ["pull"]}],
            {},
            "'nobody' is not defined",
        ),
        ([{"account": "a", "actions": ["pull"]}], {}, "exactly one of repository"),
        ([{"account": "a", "repository": "*", "catalog": True}], {}, "exactly one of repository"),
        ([{"account": "a", "repository": "Upper/*", "actions": ["pull"]}], {}, "lower-case"),
        ([{"account": "a", "repository": "a/[x]", "actions": ["pull"]}], {}, "lower-case"),
        ([{"account": "a", "repository": "*", "actions": ["write"]}], {}, "actions must be"),
        ([{"account": "a", "repository": "*"}], {}, "actions must be"),
        (
            [{"account": "a", "repository": "*", "actions": ["pull"], "typo": 1}],
            {},
            "unknown key(s) typo",
        ),
        (["not a rule"], {}, "must be a mapping"),
        ("not a list", {}, "must be a list of rules"),
        ([], {"bad name!": []}, "group name"),
        ([], {"g": "alice"}, "must be a list of user names"),
    ],
)
def test_unusable_rules_are_named(rules, groups, fragment):
    problems = acl_problems(rules, groups)
    assert any(fragment in problem for problem in problems), problems
