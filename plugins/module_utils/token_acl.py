# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Access rules of the registry's token service: validation and matching.

Pure Python without Ansible imports: the role's preflight validates rules with it (filter
acl_problems) and the token service on the registry host decides with it, so both read
the rules alike. The role copies this file beside the service.

Rules are ordered; for each resource asked for, the first rule that matches the caller and
the resource decides what is granted (its actions, intersected with those asked for). A
rule names the caller by ``account`` (a user name; ``*`` for any signed-in user;
``anonymous`` for a caller without credentials) or by ``group``, and the resource by
``repository`` (a glob: ``*`` any characters including ``/``, ``?`` one character,
``${account}`` the caller's own name) or by ``catalog: true`` (listing repositories).
"""

from __future__ import annotations

import functools
import re

ACTIONS = ("pull", "push", "delete")
ANONYMOUS = "anonymous"
ACCOUNT_PLACEHOLDER = "${account}"
_RULE_KEYS = ("account", "group", "repository", "catalog", "actions", "comment")
# What a group name may be (registry_token_groups, and the directory's group mapping).
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The repository grammar's characters, plus the glob's * and ?.
_PATTERN_TEXT = re.compile(r"^[a-z0-9._/*?-]*$")
# distribution's repository name grammar (reference/regexp.go) and its length limit: a name
# outside them names no repository, so it is granted nothing and never reaches a glob (a
# glob of several '*' costs the cube of the name's length to match).
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY_NAME = re.compile(r"%s(?:/%s)*" % (_NAME_COMPONENT, _NAME_COMPONENT))
MAX_NAME_LENGTH = 255


def is_repository_name(name):
    """True for a name the registry could hold: its grammar, at most 255 characters."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and _REPOSITORY_NAME.fullmatch(name) is not None
    )


def _pattern_problems(where, pattern):
    if not isinstance(pattern, str) or not pattern:
        return [
            "%s: repository must be a non-empty glob such as 'team/*' or '${account}/*'" % where
        ]
    text = pattern.replace(ACCOUNT_PLACEHOLDER, "")
    if not _PATTERN_TEXT.match(text):
        return [
            "%s: repository %r may hold only lower-case letters, digits, '.', '_', '-', '/', "
            "the globs '*' and '?', and ${account}" % (where, pattern)
        ]
    return []


def acl_problems(rules, groups):
    """Every problem with the rules and groups, as messages naming the rule; [] when valid."""
    problems = []
    if not isinstance(groups, dict):
        return ["registry_token_groups must be a mapping of group name to a list of user names"]
    for name, members in groups.items():
        if not isinstance(name, str) or not GROUP_NAME.match(name):
            problems.append(
                "registry_token_groups: group name %r must be 1-64 letters, digits, '_', '.', '-'"
                % (name,)
            )
        if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
            problems.append("registry_token_groups.%s must be a list of user names" % (name,))
    if not isinstance(rules, list):
        return problems + ["registry_token_acl must be a list of rules"]
    for index, rule in enumerate(rules):
        where = "registry_token_acl[%d]" % index
        if not isinstance(rule, dict):
            problems.append(
                "%s must be a mapping (account or group, repository or catalog, actions)" % where
            )
            continue
        unknown = sorted(set(rule) - set(_RULE_KEYS))
        if unknown:
            problems.append(
                "%s: unknown key(s) %s; a rule knows %s"
                % (where, ", ".join(unknown), ", ".join(_RULE_KEYS))
            )
        if ("account" in rule) == ("group" in rule):
            problems.append(
                "%s must name exactly one of account (a user, '*' or 'anonymous') and group" % where
            )
        elif "account" in rule and (not isinstance(rule["account"], str) or not rule["account"]):
            problems.append("%s: account must be a user name, '*' or 'anonymous'" % where)
        elif "group" in rule and rule["group"] not in groups:
            problems.append(
                "%s: group %r is not defined in registry_token_groups" % (where, rule["group"])
            )
        problems.extend(resource_problems(where, rule))
    return problems


def resource_problems(where, rule):
    """What is wrong with a rule's resource (a repository glob or catalog: true) and its
    actions, as sentences starting with ``where``; shared with the robots' rules."""
    problems = []
    is_catalog = rule.get("catalog", False) is True
    if ("repository" in rule) == is_catalog:
        problems.append("%s must have exactly one of repository (a glob) and catalog: true" % where)
    elif "repository" in rule:
        problems.extend(_pattern_problems(where, rule["repository"]))
    actions = rule.get("actions", ["*"] if is_catalog else None)
    if not isinstance(actions, list) or not all(a in ACTIONS + ("*",) for a in actions):
        problems.append(
            "%s: actions must be a list of pull, push, delete or '*' (an empty list denies)" % where
        )
    return problems


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern, account):
    """The pattern as a regex for fullmatch (``$`` would also take a trailing newline),
    ${account} standing for the literal account name."""
    parts = []
    for index, literal in enumerate(pattern.split(ACCOUNT_PLACEHOLDER)):
        if index:
            parts.append(re.escape(account))
        for char in literal:
            parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _caller_matches(rule, account, groups):
    if "group" in rule:
        return account != ANONYMOUS and account in groups.get(rule["group"], ())
    wanted = rule["account"]
    if wanted == "*":
        return account != ANONYMOUS
    return wanted == account


def _granted(rule_actions, requested):
    if "*" in rule_actions:
        return list(requested)
    return [action for action in requested if action in rule_actions]


def grant(rules, groups, account, resource_type, name, requested):
    """The actions of ``requested`` that the first matching rule allows on the resource."""
    if resource_type == "repository" and not is_repository_name(name):
        return []
    for rule in rules:
        if not _caller_matches(rule, account, groups):
            continue
        if resource_type == "registry":
            if rule.get("catalog") is True and name == "catalog":
                return _granted(rule.get("actions", ["*"]), requested)
            continue
        if resource_type != "repository" or "repository" not in rule:
            continue
        if _glob_regex(rule["repository"], account).fullmatch(name):
            return _granted(rule["actions"], requested)
    return []


def may_pull_somewhere(rules, groups, account):
    """False when no rule could grant ``account`` a pull on any repository: then no name
    of the catalog can be listed for it, and the catalog need not be read."""
    return any(
        "repository" in rule
        and _caller_matches(rule, account, groups)
        and ("pull" in rule["actions"] or "*" in rule["actions"])
        for rule in rules
    )


def parse_scope(scope):
    """'repository:team/app:pull,push' -> ('repository', 'team/app', ['pull', 'push']).

    The name may hold a registry host with a port ('repository:host:5000/app:pull'), so the
    type is cut at the first colon and the actions at the last. None when malformed.
    """
    if not isinstance(scope, str) or scope.count(":") < 2:
        return None
    resource_type, rest = scope.split(":", 1)
    name, actions = rest.rsplit(":", 1)
    if not resource_type or not name:
        return None
    return resource_type, name, [action for action in actions.split(",") if action]
