# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""htpasswd files with bcrypt entries only, as the registry's htpasswd auth reads them.

Parsing and planning are pure functions; hashing goes through passlib (or libpass, the
maintained drop-in that imports as `passlib`).
"""

from __future__ import annotations

import re

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.privreg.registry.plugins.module_utils.fileio import keep_file, read_bytes
from ansible_collections.privreg.registry.plugins.module_utils.module_support import Dependency
from ansible_collections.privreg.registry.plugins.module_utils.validation import text_line

PASSLIB = Dependency(
    "passlib and bcrypt", "Debian: python3-passlib, python3-bcrypt; pip: libpass, bcrypt"
)
try:
    from passlib.hash import bcrypt as _bcrypt
except ImportError as exc:  # reported by the module (PASSLIB.require)
    PASSLIB.missing(exc)

BCRYPT_RE = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
# Apache's htpasswd -B writes $2y$; the registry (Go's bcrypt) accepts it.
BCRYPT_IDENT = "2y"
DEFAULT_MODE = "0600"


class HtpasswdError(ValueError):
    """Input the module refuses: the message names the field and the fix."""


def bcrypt_cost(hashed):
    """The cost a bcrypt entry was hashed with, or None for any other entry."""
    match = BCRYPT_RE.match(hashed or "")
    return int(match.group(1)) if match else None


def is_bcrypt(hashed):
    return bcrypt_cost(hashed) is not None


def parse(text):
    """Return an ordered dict of user -> hash. Blank lines are dropped."""
    entries = {}
    # Lines end at \n only, as the registry reads them (splitlines() would also split at
    # Unicode line separators that a name may hold).
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not name:
            raise HtpasswdError("line %d of the htpasswd file is not 'user:hash'" % number)
        entries[name] = hashed.strip()
    return entries


def render(entries):
    return "".join("%s:%s\n" % (name, hashed) for name, hashed in entries.items())


def user_problems(users, where="users"):
    """Every reason the registry could not use these users, as sentences naming the entry.

    Shared by the module (which refuses to write) and the role's preflight (which refuses
    to start), so both apply the same rules. Passwords never appear in the sentences.
    """
    problems = []
    seen = set()
    for index, user in enumerate(users):
        entry = "%s[%d]" % (where, index)
        if not isinstance(user, dict):
            problems.append("%s is not a mapping with name and password" % entry)
            continue
        name = user.get("name")
        state = user.get("state", "present")
        if name is None or not str(name).strip():
            problems.append("%s has no name" % entry)
            continue
        name = str(name)
        if ":" in name:
            problems.append(
                "%s name %s contains ':', which htpasswd uses as separator" % (entry, name)
            )
        if text_line(name) or name != name.strip():
            problems.append(
                "%s name %r has surrounding spaces, line breaks or control characters"
                % (entry, name)
            )
        if name.startswith("#"):
            # The registry reads such a line as a comment: the user could never log in.
            problems.append(
                "%s name %s starts with '#', which htpasswd reads as a comment" % (entry, name)
            )
        if name in seen:
            problems.append("%s name %s appears twice; list each user once" % (entry, name))
        seen.add(name)
        if state not in ("present", "absent"):
            problems.append("%s (%s) has state %r; use present or absent" % (entry, name, state))
        if state == "present" and (user.get("password") is None or user.get("password") == ""):
            problems.append("%s (%s) has an empty password" % (entry, name))
    return problems


def validate_users(users):
    """Refuse names and passwords the registry cannot use, before anything is written."""
    problems = user_problems(users)
    if problems:
        raise HtpasswdError(
            "; ".join(problems) + ". Give every user a name (without ':', spaces around it "
            "or line breaks) and a password, or state: absent"
        )


def cost_problem(cost):
    """Why a bcrypt cost is unusable, or None."""
    if not 4 <= cost <= 31:
        return "cost must be between 4 and 31 (bcrypt's range); 10 is a good value"
    return None


def hash_password(password, cost):
    return _bcrypt.using(rounds=cost, ident=BCRYPT_IDENT).hash(password)


def verify_password(password, hashed):
    try:
        return _bcrypt.verify(password, hashed)
    except ValueError:
        return False


def plan(entries, users, exclusive, cost, hasher=hash_password, verifier=verify_password):
    """Work out the new entries.

    Returns (new_entries, added, updated, removed). An existing user is rehashed only when
    its password no longer verifies, its entry is not bcrypt (the registry ignores those) or
    was hashed with another cost (the cost is what each of the registry's checks costs).
    """
    validate_users(users)
    new = dict(entries)
    added, updated, removed = [], [], []
    wanted = set()
    for user in users:
        name = user["name"]
        if user.get("state", "present") == "absent":
            if name in new:
                del new[name]
                removed.append(name)
            continue
        wanted.add(name)
        current = new.get(name)
        if bcrypt_cost(current) == cost and verifier(user["password"], current):
            continue
        new[name] = hasher(user["password"], cost)
        (updated if current is not None else added).append(name)
    if exclusive:
        for name in list(new):
            if name not in wanted:
                del new[name]
                removed.append(name)
    return new, added, updated, removed


def names_text(entries, marked=()):
    """The secret-free view used for diffs: one user name a line."""
    lines = []
    for name in entries:
        lines.append("%s (password set)" % name if name in marked else name)
    return "".join(line + "\n" for line in lines)


class HtpasswdFile:
    """What the registry_htpasswd module does; the module file declares the interface."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        p = self.params
        if cost_problem(p["cost"]):
            raise HtpasswdError(cost_problem(p["cost"]))
        current = read_bytes(p["path"])
        entries = parse(to_text(current or b""))
        new, added, updated, removed = plan(entries, p["users"], p["exclusive"], p["cost"])
        self._warn_foreign(new)

        changed = keep_file(
            self.module,
            p["path"],
            current,
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
            users=list(new),
        )
        if self.module._diff:
            result["diff"] = dict(
                before_header=p["path"],
                after_header=p["path"],
                before="" if current is None else names_text(entries),
                after=names_text(new, marked=updated),
            )
        return result

    def _warn_foreign(self, entries):
        foreign = [name for name, hashed in entries.items() if not is_bcrypt(hashed)]
        if foreign:
            self.module.warn(
                "htpasswd entries for %s are not bcrypt; the registry ignores them. List these "
                "users with a password, or use exclusive: true." % ", ".join(sorted(foreign))
            )
