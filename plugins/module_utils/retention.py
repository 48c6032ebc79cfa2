# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention rules of the registry's tags: validation and the decision of what goes.

Pure Python without Ansible imports: the role's preflight validates the rules with it
(check_settings, kind retention_rules) and registryctl on the registry host decides with
it, so both read the rules alike. The role installs this file beside registryctl.

Rules are ordered; the first whose ``repositories`` glob (``*`` any characters including
``/``, ``?`` one character) matches a repository decides for all of its tags, and a
repository no rule matches keeps every tag. Within a rule a tag is kept if any of these
holds, and deleted otherwise:

- its name matches ``keep_tags`` (a regular expression, matched against the whole name);
- it is among the ``keep_last`` most recently pushed of the repository's other tags (those
  ``keep_tags`` does not keep: "the last 10 builds, and every release");
- it was pushed within the last ``keep_days`` days;
- it was pulled within the last ``keep_pulled_days`` days (its manifest fetched, by tag or
  by digest, as the registry's pull events recorded it). Until the records cover that many
  days, the rule keeps every tag it would delete only for want of a pull: a pull before
  the records began is unknown, not absent.

The time that counts is when the tag was last pushed (the tag's link in the store), never
the image's ``created`` date, which reproducible builds set to 1970. A repository keeps
its most recently pushed tag even when the rule would delete every tag, unless the rule
says ``delete_last_tag: true``.
"""

from __future__ import annotations

import re

RULE_KEYS = (
    "repositories",
    "keep_last",
    "keep_days",
    "keep_pulled_days",
    "keep_tags",
    "delete_last_tag",
    "comment",
)
KEEP_KEYS = ("keep_last", "keep_days", "keep_pulled_days", "keep_tags")
MAX_KEEP_LAST = 100000
MAX_KEEP_DAYS = 36500
MAX_PATTERN = 1024
DAY = 86400
# The repository grammar's characters, plus the glob's * and ?.
_GLOB_TEXT = re.compile(r"^[a-z0-9._/*?-]+$")


def _glob_regex(pattern):
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )


def _count_problem(where, key, value, high):
    if isinstance(value, bool) or not isinstance(value, int):
        return "%s: %s must be a whole number 0-%d, not %r" % (where, key, high, value)
    if not 0 <= value <= high:
        return "%s: %s %d is outside 0-%d" % (where, key, value, high)
    return None


def rule_problems(rules, variable="registry_maintenance_retention_rules"):
    """One sentence per problem, each naming the rule by its index, with the fix."""
    if not isinstance(rules, list):
        return ["%s must be a list of rules ({repositories, keep_last, ...})" % variable]
    problems = []
    for index, rule in enumerate(rules):
        where = "%s[%d]" % (variable, index)
        if not isinstance(rule, dict):
            problems.append(
                "%s must be a mapping such as {repositories: 'ci/*', keep_last: 10}" % where
            )
            continue
        unknown = sorted(str(key) for key in rule if key not in RULE_KEYS)
        if unknown:
            problems.append(
                "%s has the unknown key(s) %s; a rule knows %s"
                % (where, ", ".join(unknown), ", ".join(RULE_KEYS))
            )
        pattern = rule.get("repositories")
        if not isinstance(pattern, str) or not _GLOB_TEXT.match(pattern):
            problems.append(
                "%s: repositories must be a glob of lower-case letters, digits, '.', '_', "
                "'-', '/', '*' and '?' (such as 'ci/*'), not %r" % (where, pattern)
            )
        if not any(key in rule for key in KEEP_KEYS):
            problems.append(
                "%s keeps nothing: give keep_last, keep_days, keep_pulled_days or keep_tags "
                "(a rule without them would delete every tag)" % where
            )
        for key, high in (
            ("keep_last", MAX_KEEP_LAST),
            ("keep_days", MAX_KEEP_DAYS),
            ("keep_pulled_days", MAX_KEEP_DAYS),
        ):
            if key in rule:
                problem = _count_problem(where, key, rule[key], high)
                if problem:
                    problems.append(problem)
        if "keep_tags" in rule:
            keep_tags = rule["keep_tags"]
            if not isinstance(keep_tags, str) or not keep_tags or len(keep_tags) > MAX_PATTERN:
                problems.append(
                    "%s: keep_tags must be a regular expression of 1-%d characters, such as "
                    "'latest|v[0-9.]+'" % (where, MAX_PATTERN)
                )
            else:
                try:
                    re.compile(keep_tags)
                except re.error as exc:
                    problems.append(
                        "%s: keep_tags %r is not a regular expression (%s)"
                        % (where, keep_tags, exc)
                    )
        if "delete_last_tag" in rule and not isinstance(rule["delete_last_tag"], bool):
            problems.append("%s: delete_last_tag must be true or false" % where)
        if "comment" in rule and not isinstance(rule["comment"], str):
            problems.append("%s: comment must be text" % where)
    return problems


def matching_rule(rules, repository):
    """(index, rule) of the first rule whose glob matches the repository, or (None, None)."""
    for index, rule in enumerate(rules):
        if _glob_regex(rule["repositories"]).fullmatch(repository):
            return index, rule
    return None, None


def _pull_keeps(pulled_days, recorded_days, keep_pulled_days):
    """Why keep_pulled_days keeps a tag, or None: pulled within the days, or records too
    young (or none) to tell "not pulled" from "not seen"."""
    if pulled_days is not None and pulled_days < keep_pulled_days:
        return "pulled within %d days" % keep_pulled_days
    if recorded_days is None or recorded_days < keep_pulled_days:
        return "pulls recorded for %s, fewer than keep_pulled_days %d" % (
            "no days" if recorded_days is None else "%.1f days" % recorded_days,
            keep_pulled_days,
        )
    return None


def decide(rules, repository, tags, now, pulls_since=None):
    """What the rules do to one repository's tags.

    ``tags`` is a list of {tag, digest, pushed[, pulled]} (seconds since the epoch);
    ``pulls_since`` is when the pull records began (None: there are none). Returns None
    when no rule matches, else {rule, keep: [{tag, reason}], delete: [{tag, digest, pushed,
    reason}]}, newest first."""
    index, rule = matching_rule(rules, repository)
    if rule is None:
        return None
    newest_first = sorted(tags, key=lambda tag: (-tag["pushed"], tag["tag"]))
    keep_last = rule.get("keep_last")
    keep_days = rule.get("keep_days")
    keep_pulled_days = rule.get("keep_pulled_days")
    # Records younger than the rule's days cannot tell "not pulled" from "not seen".
    recorded_days = None if pulls_since is None else max(0.0, (now - pulls_since) / DAY)
    keep_tags = re.compile(rule["keep_tags"]) if rule.get("keep_tags") else None
    keep, delete = [], []
    position = 0  # among the tags keep_tags does not keep: releases take no build's place
    for tag in newest_first:
        age_days = (now - tag["pushed"]) / DAY
        pulled_days = (now - tag["pulled"]) / DAY if tag.get("pulled") is not None else None
        pull_reason = (
            _pull_keeps(pulled_days, recorded_days, keep_pulled_days)
            if keep_pulled_days is not None
            else None
        )
        if keep_tags is not None and keep_tags.fullmatch(tag["tag"]):
            keep.append({"tag": tag["tag"], "reason": "matches keep_tags"})
            continue
        position += 1
        if keep_last is not None and position <= keep_last:
            keep.append({"tag": tag["tag"], "reason": "among the newest %d" % keep_last})
        elif keep_days is not None and age_days < keep_days:
            keep.append({"tag": tag["tag"], "reason": "pushed within %d days" % keep_days})
        elif pull_reason:
            keep.append({"tag": tag["tag"], "reason": pull_reason})
        else:
            reasons = []
            if keep_last is not None:
                reasons.append("not among the newest %d" % keep_last)
            if keep_days is not None:
                reasons.append("pushed %.1f days ago (keep_days %d)" % (age_days, keep_days))
            if keep_pulled_days is not None:
                reasons.append(
                    "last pulled %.1f days ago (keep_pulled_days %d)"
                    % (pulled_days, keep_pulled_days)
                    if pulled_days is not None
                    else "not pulled in the %.1f days recorded" % recorded_days
                )
            if keep_tags is not None:
                reasons.append("does not match keep_tags")
            delete.append(dict(tag, reason="rule %d: %s" % (index, ", ".join(reasons))))
    if delete and not keep and not rule.get("delete_last_tag", False):
        last = delete.pop(0)
        keep.append({"tag": last["tag"], "reason": "the repository's last tag"})
    return {"rule": index, "keep": keep, "delete": delete}
