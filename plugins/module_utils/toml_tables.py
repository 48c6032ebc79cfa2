# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Set or remove keys of one TOML table in place, leaving the rest of the file as it was.

containerd's config.toml is edited by operators and other tools, so it is changed through
tomlkit, the maintained style-preserving TOML library (Debian: python3-tomlkit): comments,
order and formatting of everything else stay. What is written is parsed again and must
hold the values before the file is replaced.
"""

from __future__ import annotations

import os

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.privreg.registry.plugins.module_utils.fileio import (
    atomic_write,
    ensure_attributes,
    file_mode,
    read_bytes,
)
from ansible_collections.privreg.registry.plugins.module_utils.module_support import Dependency

TOMLKIT = Dependency("tomlkit", "Debian: python3-tomlkit")
try:
    import tomlkit
except ImportError as exc:  # reported by the module (TOMLKIT.require)
    TOMLKIT.missing(exc)

NEW_FILE_MODE = 0o644
MASK = "********"


class TomlEditError(ValueError):
    """An edit that cannot be made safely: the message says why."""


def format_table(path):
    """The table's header as TOML writes it: [plugins."io.containerd.grpc.v1.cri".registry]."""
    return "[" + ".".join(tomlkit.key(part).as_string() for part in path) + "]"


def _plain(value):
    """tomlkit items as plain Python values, for comparing."""
    return value.unwrap() if hasattr(value, "unwrap") else value


def get_table(document, path):
    """The table at path in a parsed document, or None."""
    node = document
    for part in path:
        if not hasattr(node, "get") or part not in node:
            return None
        node = node[part]
    return node if hasattr(node, "get") else None


def set_values(text, path, values):
    """Return text with the table's keys set to values (others in the table untouched)."""
    document = _parse(text)
    node = document
    for depth, part in enumerate(path):
        if part not in node:
            # Tables that only hold tables need no header of their own.
            node[part] = tomlkit.table(is_super_table=depth < len(path) - 1)
        node = node[part]
        if not hasattr(node, "get"):
            raise TomlEditError("%s is a value, not a table" % format_table(path[: depth + 1]))
    for key, value in values.items():
        if _plain(node.get(key)) != value:
            node[key] = value
    return tomlkit.dumps(document)


def remove_table(text, path):
    """Return text without the table (its keys and the tables below it)."""
    document = _parse(text)
    parent = get_table(document, path[:-1]) if path[:-1] else document
    if parent is None or path[-1] not in parent:
        return text
    del parent[path[-1]]
    return tomlkit.dumps(document)


def _parse(text):
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # tomlkit raises its own ParseError subclasses
        raise TomlEditError("the file is not valid TOML (%s)" % exc) from exc


def masked(text, path, secret_keys):
    """The text with the secret keys of the table replaced by a mask, for diffs."""
    if not secret_keys or not text:
        return text
    document = _parse(text)
    table = get_table(document, path)
    if table is None:
        return text
    for key in secret_keys:
        if key in table:
            table[key] = MASK
    return tomlkit.dumps(document)


class TomlTable:
    """What the toml_table module does; the module file declares the interface."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        p = self.params
        values = dict(p["values"], **p["secret_values"])
        current = read_bytes(p["path"])
        before = to_text(current or b"")
        if p["state"] == "present":
            after = set_values(before, p["table"], values)
            self._check(after, values)
        else:
            after = remove_table(before, p["table"])

        changed = after != before and not (current is None and p["state"] == "absent")
        if changed and not self.module.check_mode:
            mode = file_mode(p["mode"], _existing_mode(p["path"]))
            atomic_write(p["path"], to_bytes(after), mode)
        if p["mode"] is not None and read_bytes(p["path"]) is not None:
            changed = ensure_attributes(self.module, p["path"], p["mode"], changed)
        result = dict(changed=changed, path=p["path"], table=format_table(p["table"]))
        if self.module._diff:
            secret_keys = list(p["secret_values"])
            result["diff"] = dict(
                before_header=p["path"],
                after_header=p["path"],
                before=masked(before, p["table"], secret_keys),
                after=masked(after, p["table"], secret_keys),
            )
        return result

    def _check(self, text, values):
        """Parse what would be written: the table must hold exactly the values asked for."""
        table = get_table(_parse(text), self.params["table"])
        if table is None or any(_plain(table.get(k)) != v for k, v in values.items()):
            raise TomlEditError("the edited table does not hold the values")


def _existing_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return NEW_FILE_MODE
