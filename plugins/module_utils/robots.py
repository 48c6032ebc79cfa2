# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Robot accounts of the token service: named, scoped, expiring credentials for CI.

A robot signs in as PREFIX + name (``robot$ci`` by default) with a secret; it gets exactly
the access its own rules give (the access rules of people do not apply to it) until its
expiry. The file the service reads (robots.json) holds each robot's bcrypt hash, expiry
(seconds since the epoch, or null) and rules; never a secret.

Validation and planning are pure functions, shared by the role's preflight (the ``robots``
kind of check_settings) and the registry_robots module; hashing goes through passlib.
"""

from __future__ import annotations

import calendar
import datetime
import json
import re

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.privreg.registry.plugins.module_utils.fileio import keep_file, read_bytes
from ansible_collections.privreg.registry.plugins.module_utils.htpasswd import (
    PASSLIB,
    bcrypt_cost,
    cost_problem,
    hash_password,
    verify_password,
)
from ansible_collections.privreg.registry.plugins.module_utils.token_acl import (
    ACCOUNT_PLACEHOLDER,
    resource_problems,
)

__all__ = ["PASSLIB", "RobotsError", "RobotsFile", "robot_problems"]

DEFAULT_MODE = "0640"


class RobotsError(ValueError):
    """Input the module refuses: the message names the robot and the fix."""


NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# A prefix no person's name starts with: Harbor's, so CI systems that know Harbor's robots
# know this one. Some CI systems expand '$' in variables (GitLab without "raw"): the prefix
# is a setting.
DEFAULT_PREFIX = "robot$"
_PREFIX = re.compile(r"^[A-Za-z0-9._$+-]{1,16}$")
_ROBOT_KEYS = ("name", "secret", "expires", "access", "description")
_ACCESS_KEYS = ("repository", "catalog", "actions", "comment")
# A generated secret is 43 characters (256 bits); one given must be long enough that no
# guessing within the failed-login limit can find it, and within bcrypt's 72 bytes.
MIN_SECRET = 16
MAX_SECRET_BYTES = 72
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")
NEVER = "never"


def _expiry_text(value):
    """YAML reads an unquoted 2027-06-30 as a date: the text it was written as."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def expiry_seconds(value):
    """Seconds since the epoch at which the robot stops working, None for ``never``.

    A date is the start of that day (UTC): the first day the robot no longer works.
    ValueError for anything else."""
    value = _expiry_text(value)
    if value == NEVER:
        return None
    if not isinstance(value, str):
        raise ValueError("not a date")
    found = _DATE.match(value) or _DATETIME.match(value)
    if not found:
        raise ValueError("not a date")
    parts = [int(part) for part in found.groups()] + [0, 0, 0]
    moment = datetime.datetime(*parts[:6])  # ValueError for 2027-02-30
    return calendar.timegm(moment.timetuple())


def prefix_problem(prefix):
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        return (
            "must be 1-16 letters, digits or '._$+-' (the start of every robot's account name, "
            "e.g. robot$ or robot-)"
        )
    return None


def secret_problem(secret):
    """Why a secret given for a robot is unusable, or None; never shows the secret."""
    if not isinstance(secret, str):
        return "is not text"
    if any(ord(character) < 32 or ord(character) == 127 for character in secret):
        return "has a line break or control character"
    if len(secret) < MIN_SECRET:
        return (
            "is shorter than %d characters; give a longer one, or none and let the role "
            "make one" % MIN_SECRET
        )
    if len(secret.encode("utf-8")) > MAX_SECRET_BYTES:
        return "is longer than bcrypt's %d bytes" % MAX_SECRET_BYTES
    return None


def robot_problems(robots, variable="registry_token_robots"):
    """Every problem with the robots, one sentence naming the robot and the fix; [] when
    they are usable. Secrets never appear in the sentences."""
    if not isinstance(robots, list):
        return ["%s must be a list of robots {name, expires, access}" % variable]
    problems, seen = [], set()
    for index, robot in enumerate(robots):
        where = "%s[%d]" % (variable, index)
        if not isinstance(robot, dict):
            problems.append("%s must be a mapping with name, expires and access" % where)
            continue
        unknown = sorted(set(robot) - set(_ROBOT_KEYS))
        if unknown:
            problems.append(
                "%s: unknown key(s) %s; a robot knows %s"
                % (where, ", ".join(map(str, unknown)), ", ".join(_ROBOT_KEYS))
            )
        name = robot.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(
                "%s: name %r must be 1-64 lower-case letters, digits, '.', '_' or '-'"
                % (where, name)
            )
        elif name in seen:
            problems.append("%s: name %s appears twice; list each robot once" % (where, name))
        else:
            where = "%s (%s)" % (where, name)
            seen.add(name)
        if "expires" not in robot:
            problems.append(
                "%s has no expires: give the date it stops working (2027-06-30, "
                "2027-06-30T18:00:00Z, in UTC) or 'never'" % where
            )
        else:
            try:
                expiry_seconds(robot["expires"])
            except (ValueError, TypeError):
                problems.append(
                    "%s: expires %r is not a date (2027-06-30, 2027-06-30T18:00:00Z, in UTC) "
                    "or 'never'" % (where, _expiry_text(robot["expires"]))
                )
        if "secret" in robot and robot["secret"] is not None:
            problem = secret_problem(robot["secret"])
            if problem:
                problems.append("%s: the secret %s" % (where, problem))
        problems.extend(access_problems(robot.get("access"), where))
    return problems


def access_problems(access, where):
    """The robot's own rules: each {repository, actions} or {catalog: true}."""
    if not isinstance(access, list) or not access:
        return [
            "%s: access must be a non-empty list such as [{repository: 'team/*', actions: "
            "[pull, push]}] (a robot with no access is better removed)" % where
        ]
    problems = []
    for index, rule in enumerate(access):
        at = "%s.access[%d]" % (where, index)
        if not isinstance(rule, dict):
            problems.append("%s must be a mapping (repository or catalog, actions)" % at)
            continue
        unknown = sorted(set(rule) - set(_ACCESS_KEYS))
        if unknown:
            problems.append(
                "%s: unknown key(s) %s; a robot's rule knows %s (it is always the robot's own)"
                % (at, ", ".join(map(str, unknown)), ", ".join(_ACCESS_KEYS))
            )
        if ACCOUNT_PLACEHOLDER in str(rule.get("repository", "")):
            problems.append(
                "%s: a robot's repository cannot name ${account} (a robot has no namespace of "
                "its own); name the repositories" % at
            )
            continue
        problems.extend(resource_problems(at, rule))
    return problems


def service_rules(account, access):
    """The robot's rules as rules of the service (token_acl), naming the robot's account."""
    return [
        dict(
            {"account": account}, **{key: value for key, value in rule.items() if key != "comment"}
        )
        for rule in access
    ]


def parse(text):
    """robots.json's robots: account -> {hash, expires, access}; {} for an empty file."""
    if not text.strip():
        return {}
    data = json.loads(text)
    robots = data.get("robots") if isinstance(data, dict) else None
    if not isinstance(robots, dict):
        raise ValueError("robots.json has no robots mapping")
    return robots


def render(robots):
    return json.dumps({"robots": robots}, indent=2, sort_keys=True) + "\n"


def plan(
    current,
    robots,
    prefix,
    cost,
    hasher=hash_password,
    verifier=verify_password,
    cost_of=bcrypt_cost,
):
    """The robots the file should hold: (new, added, updated, removed, rehashed), account
    names (updated: any change of an existing robot; rehashed: its secret changed).

    Exactly the robots listed stay (a robot left out of the list is removed). A robot's
    hash is made again only when its secret is given and no longer verifies (or was hashed
    at another cost); a robot without a secret keeps its hash, and must already exist."""
    problems = robot_problems(robots, variable="robots")
    problem = prefix_problem(prefix)
    if problem:
        problems.append("prefix %s" % problem)
    if problems:
        raise RobotsError("; ".join(problems))
    new, added, updated, rehashed = {}, [], [], []
    for robot in robots:
        account = prefix + robot["name"]
        before = current.get(account)
        secret = robot.get("secret")
        hashed = before.get("hash") if isinstance(before, dict) else None
        if secret is None and hashed is None:
            raise RobotsError(
                "robot %s is not on the host yet and has no secret; give it one (or let the "
                "role make one)" % robot["name"]
            )
        if secret is not None and not (
            hashed and cost_of(hashed) == cost and verifier(secret, hashed)
        ):
            hashed = hasher(secret, cost)
            if before is not None:
                rehashed.append(account)
        entry = {
            "hash": hashed,
            "expires": expiry_seconds(robot["expires"]),
            "access": service_rules(account, robot["access"]),
        }
        if before is None:
            added.append(account)
        elif before != entry:
            updated.append(account)
        new[account] = entry
    removed = sorted(set(current) - set(new))
    return new, added, updated, removed, rehashed


def _moment(seconds):
    if seconds is None:
        return NEVER
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def view(robots, marked=()):
    """The secret-free view for diffs: each robot, its expiry and rules; no hash."""
    lines = []
    for account in sorted(robots):
        robot = robots[account]
        lines.append(
            "%s%s expires %s"
            % (account, " (secret set)" if account in marked else "", _moment(robot.get("expires")))
        )
        for rule in robot.get("access", []):
            resource = "catalog" if rule.get("catalog") is True else rule.get("repository")
            lines.append("  %s: %s" % (resource, ", ".join(rule.get("actions", ["*"]))))
    return "".join(line + "\n" for line in lines)


class RobotsFile:
    """What the registry_robots module does; the module file declares the interface."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        p = self.params
        if cost_problem(p["cost"]):
            raise RobotsError(cost_problem(p["cost"]))
        current_bytes = read_bytes(p["path"])
        try:
            current = parse(to_text(current_bytes or b""))
        except ValueError as exc:
            raise RobotsError(
                "%s is not a robots file the service wrote: %s" % (p["path"], exc)
            ) from exc
        new, added, updated, removed, rehashed = plan(current, p["robots"], p["prefix"], p["cost"])
        changed = keep_file(
            self.module,
            p["path"],
            current_bytes,
            to_bytes(render(new)),
            bool(added or updated or removed),
            p["mode"] or DEFAULT_MODE,
        )
        result = dict(
            changed=changed,
            path=p["path"],
            added=added,
            updated=updated,
            removed=removed,
            robots=sorted(new),
        )
        if self.module._diff:
            result["diff"] = dict(
                before_header=p["path"],
                after_header=p["path"],
                before="" if current_bytes is None else view(current),
                after=view(new, marked=rehashed),
            )
        return result
