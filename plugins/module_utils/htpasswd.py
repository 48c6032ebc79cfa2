# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""htpasswd files with bcrypt entries only, as the registry's htpasswd auth reads them.

Parsing and planning are pure functions; hashing goes through passlib (or libpass, the
maintained drop-in that imports as `passlib`).
"""

from __future__ import annotations

import re

try:
    from passlib.hash import bcrypt as _bcrypt

    HAS_PASSLIB = True
    PASSLIB_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module with missing_required_lib
    HAS_PASSLIB = False
    PASSLIB_IMPORT_ERROR = exc

BCRYPT_RE = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
# Apache's htpasswd -B writes $2y$; the registry (Go's bcrypt) accepts it.
BCRYPT_IDENT = "2y"


class HtpasswdError(ValueError):
    """Input the module refuses: the message names the field and the fix."""


def is_bcrypt(hashed):
    return bool(BCRYPT_RE.match(hashed or ""))


def parse(text):
    """Return an ordered dict of user -> hash. Blank lines are dropped."""
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not name:
            raise HtpasswdError("line %d of the htpasswd file is not 'user:hash'" % number)
        entries[name] = hashed.strip()
    return entries


def render(entries):
    return "".join("%s:%s\n" % (name, hashed) for name, hashed in entries.items())


def validate_users(users):
    """Refuse names and passwords the registry cannot use, before anything is written."""
    seen = set()
    for index, user in enumerate(users):
        name = user.get("name")
        where = "users[%d]" % index
        if not name or not name.strip():
            raise HtpasswdError("%s.name is empty: every user needs a name" % where)
        if ":" in name:
            raise HtpasswdError(
                "%s.name %r contains ':', which htpasswd uses as separator; choose a name "
                "without ':'" % (where, name)
            )
        if any(c in name for c in "\r\n") or name != name.strip():
            raise HtpasswdError(
                "%s.name %r has surrounding spaces or line breaks; remove them" % (where, name)
            )
        if name in seen:
            raise HtpasswdError("%s.name %r appears twice in users; list each once" % (where, name))
        seen.add(name)
        if user.get("state", "present") == "present":
            password = user.get("password")
            if password is None or password == "":
                raise HtpasswdError(
                    "%s.password for user %r is empty: set a password (from vault), or "
                    "state: absent to remove the user" % (where, name)
                )


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
    its password no longer verifies or its entry is not bcrypt (the registry ignores those).
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
        if current is not None and is_bcrypt(current) and verifier(user["password"], current):
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
