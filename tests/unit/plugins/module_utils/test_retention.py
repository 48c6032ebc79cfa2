"""The retention rules (plugins/module_utils/retention.py): what preflight refuses, and
what the rules keep and delete. Expected values come from each case's own arithmetic."""

from __future__ import annotations

import pytest

from ansible_collections.privreg.registry.plugins.module_utils.retention import (
    DAY,
    decide,
    rule_problems,
)

NOW = 1_800_000_000.0


def tags(*spec):
    """(name, age in days[, digest]) -> the tags decide() reads."""
    return [
        {"tag": name, "digest": rest[0] if rest else "sha256:" + name, "pushed": NOW - age * DAY}
        for name, age, *rest in spec
    ]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("ci/*", "must be a list"),
        ([{"repositories": "ci/*", "keep_last": -1}], "[0]: keep_last -1 is outside 0-100000"),
        ([{"repositories": "ci/*", "keep_last": True}], "[0]: keep_last must be a whole number"),
        ([{"repositories": "ci/*", "keep_days": "7"}], "[0]: keep_days must be a whole number"),
        ([{"repositories": "ci/*", "keep_days": 36501}], "[0]: keep_days 36501 is outside"),
        (
            [{"repositories": "ci/*", "keep_tags": "v[0-9"}],
            "[0]: keep_tags 'v[0-9' is not a regular",
        ),
        (
            [{"repositories": "ci/*", "keep_tags": ""}],
            "[0]: keep_tags must be a regular expression",
        ),
        ([{"repositories": "ci/*"}], "[0] keeps nothing"),
        (
            [{"repositories": "a", "keep_last": 1}, {"repositories": "b", "keep_lats": 3}],
            "[1] has the unknown key(s) keep_lats",
        ),
        ([{"repositories": "CI/*", "keep_last": 1}], "[0]: repositories must be a glob"),
        ([{"repositories": "", "keep_last": 1}], "[0]: repositories must be a glob"),
        ([{"repositories": "ci/$(id)", "keep_last": 1}], "[0]: repositories must be a glob"),
        ([{"repositories": "ci", "keep_last": 1, "delete_last_tag": "yes"}], "delete_last_tag"),
        (["ci/*"], "[0] must be a mapping"),
    ],
)
def test_a_broken_rule_is_refused_with_its_index(rules, expected):
    problems = rule_problems(rules, variable="v")
    assert any(expected in problem for problem in problems), problems


def test_good_rules_have_no_problem():
    rules = [
        {"repositories": "ci/*", "keep_last": 10, "keep_tags": "latest|v[0-9.]+", "comment": "x"},
        {"repositories": "nightly", "keep_days": 0, "delete_last_tag": True},
        {"repositories": "*", "keep_tags": ".*"},
    ]
    assert rule_problems(rules) == []


def test_no_matching_rule_keeps_everything_and_the_first_match_decides():
    rules = [{"repositories": "ci/*", "keep_last": 1}, {"repositories": "ci/app", "keep_last": 5}]
    assert decide(rules, "other", tags(("a", 99)), NOW) is None
    decision = decide(rules, "ci/app", tags(("a", 1), ("b", 2)), NOW)
    assert decision["rule"] == 0
    assert [t["tag"] for t in decision["delete"]] == ["b"]


def test_keep_last_counts_by_push_time_and_releases_take_no_place():
    # Pushed 1..6 days ago: b1 is the newest. v1 and latest are protected and older.
    repo = tags(("b1", 1), ("b2", 2), ("b3", 3), ("b4", 4), ("v1", 50), ("latest", 60))
    rule = {"repositories": "*", "keep_last": 2, "keep_tags": "latest|v[0-9]+"}
    decision = decide([rule], "r", repo, NOW)
    assert sorted(t["tag"] for t in decision["delete"]) == ["b3", "b4"]
    assert {k["tag"]: k["reason"] for k in decision["keep"]} == {
        "b1": "among the newest 2",
        "b2": "among the newest 2",
        "v1": "matches keep_tags",
        "latest": "matches keep_tags",
    }


def test_keep_tags_matches_the_whole_name():
    rule = {"repositories": "*", "keep_last": 0, "keep_tags": "v[0-9]+", "delete_last_tag": True}
    decision = decide([rule], "r", tags(("v1", 9), ("v1-rc", 9), ("xv1", 9)), NOW)
    assert sorted(t["tag"] for t in decision["delete"]) == ["v1-rc", "xv1"]


def test_keep_days_keeps_what_was_pushed_within_the_window():
    decision = decide(
        [{"repositories": "*", "keep_days": 7}], "r", tags(("a", 6.9), ("b", 7.1), ("c", 30)), NOW
    )
    assert [t["tag"] for t in decision["delete"]] == ["b", "c"]
    assert decision["delete"][0]["reason"] == "rule 0: pushed 7.1 days ago (keep_days 7)"


def test_keep_last_or_keep_days_either_keeps():
    rule = {"repositories": "*", "keep_last": 1, "keep_days": 3}
    decision = decide([rule], "r", tags(("a", 1), ("b", 2), ("c", 10), ("d", 11)), NOW)
    assert [t["tag"] for t in decision["delete"]] == ["c", "d"]


def test_the_last_tag_stays_unless_the_rule_says_otherwise():
    old = tags(("old", 40), ("older", 50))
    decision = decide([{"repositories": "*", "keep_days": 7}], "r", old, NOW)
    assert [t["tag"] for t in decision["delete"]] == ["older"]
    assert decision["keep"] == [{"tag": "old", "reason": "the repository's last tag"}]
    rule = {"repositories": "*", "keep_days": 7, "delete_last_tag": True}
    assert len(decide([rule], "r", old, NOW)["delete"]) == 2


def test_the_glob_star_crosses_slashes_and_question_mark_is_one_character():
    rules = [{"repositories": "team/*", "keep_last": 0, "delete_last_tag": True}]
    assert decide(rules, "team/a/b", tags(("x", 1)), NOW)["delete"]
    assert decide(rules, "teamx", tags(("x", 1)), NOW) is None
    rules = [{"repositories": "app?", "keep_last": 0}]
    assert decide(rules, "app1", tags(("x", 1)), NOW) is not None
    assert decide(rules, "app12", tags(("x", 1)), NOW) is None


def test_a_tag_pulled_recently_survives_a_rule_that_would_drop_it():
    repo = tags(("a", 1), ("b", 20), ("c", 30), ("d", 40))
    repo[1]["pulled"] = NOW - 2 * DAY  # b: pulled two days ago
    repo[2]["pulled"] = NOW - 9 * DAY  # c: pulled, but too long ago
    rule = {"repositories": "*", "keep_last": 1, "keep_pulled_days": 7}
    decision = decide([rule], "r", repo, NOW, pulls_since=NOW - 30 * DAY)
    assert {k["tag"]: k["reason"] for k in decision["keep"]} == {
        "a": "among the newest 1",
        "b": "pulled within 7 days",
    }
    reasons = {t["tag"]: t["reason"] for t in decision["delete"]}
    assert reasons["c"] == (
        "rule 0: not among the newest 1, last pulled 9.0 days ago (keep_pulled_days 7)"
    )
    assert reasons["d"] == "rule 0: not among the newest 1, not pulled in the 30.0 days recorded"


def test_records_shorter_than_the_rule_or_none_at_all_keep_every_unseen_tag():
    rule = {"repositories": "*", "keep_last": 1, "keep_pulled_days": 7}
    for since, shown in ((NOW - 6 * DAY, "6.0 days"), (None, "no days"), (NOW + DAY, "0.0 days")):
        decision = decide([rule], "r", tags(("a", 1), ("b", 20)), NOW, pulls_since=since)
        assert decision["delete"] == []
        assert decision["keep"][1]["reason"] == (
            "pulls recorded for %s, fewer than keep_pulled_days 7" % shown
        )
    # Seven days recorded are enough.
    decision = decide([rule], "r", tags(("a", 1), ("b", 20)), NOW, pulls_since=NOW - 7 * DAY)
    assert [t["tag"] for t in decision["delete"]] == ["b"]


def test_keep_pulled_days_is_checked_like_the_other_counts():
    problems = rule_problems([{"repositories": "x", "keep_pulled_days": -2}], variable="v")
    assert problems == ["v[0]: keep_pulled_days -2 is outside 0-36500"]
    assert rule_problems([{"repositories": "x", "keep_pulled_days": 30}]) == []
