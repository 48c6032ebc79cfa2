# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set or remove keys of one TOML table in place, leaving the rest of the file as it was.

containerd's config.toml is edited by operators and other tools; rewriting it from a parsed
model would drop comments and reorder everything. This edits lines: the table's header is
found whatever its indentation or quoting, keys inside it are replaced or added, and a missing
table is appended. It understands the subset containerd's config uses (standard tables and
`key = value` lines); the caller parses the result with tomllib, where available, before
writing it.
"""

from __future__ import annotations

import json
import re

HEADER_RE = re.compile(r"^\s*\[(?!\[)(?P<name>[^\]]*(?:\"[^\"]*\"[^\]]*)*)\]\s*(?:#.*)?$")
KEY_RE = re.compile(r'^\s*(?P<key>"[^"]*"|[A-Za-z0-9_-]+)\s*=')
BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class TomlEditError(ValueError):
    pass


def split_key_path(text):
    """Split a dotted table name: quoted parts may contain dots."""
    parts, buf, quoted, i = [], "", False, 0
    text = text.strip()
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\" and i + 1 < len(text):
                buf += text[i + 1]
                i += 2
                continue
            if char == '"':
                quoted = False
            else:
                buf += char
        elif char == '"':
            quoted = True
        elif char == ".":
            parts.append(buf.strip())
            buf = ""
        else:
            buf += char
        i += 1
    if quoted:
        raise TomlEditError("unterminated quote in table name %r" % text)
    parts.append(buf.strip())
    return parts


def format_key(key):
    return key if BARE_KEY_RE.match(key) else json.dumps(key)


def format_table(path):
    return "[" + ".".join(format_key(part) for part in path) + "]"


def format_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, str):
        # JSON string escaping is valid for TOML basic strings.
        return json.dumps(value)
    raise TomlEditError("cannot write %r as a TOML value" % (value,))


def _key_of(line):
    match = KEY_RE.match(line)
    if not match:
        return None
    key = match.group("key")
    return json.loads(key) if key.startswith('"') else key


def _table_bounds(lines, path):
    """(header index, end index) of the table, or (None, None)."""
    for index, line in enumerate(lines):
        match = HEADER_RE.match(line)
        if match and split_key_path(match.group("name")) == path:
            end = index + 1
            while (
                end < len(lines)
                and not HEADER_RE.match(lines[end])
                and not lines[end].lstrip().startswith("[[")
            ):
                end += 1
            return index, end
    return None, None


def set_values(text, path, values):
    """Return text with the table's keys set to values (others in the table untouched)."""
    lines = text.splitlines()
    start, end = _table_bounds(lines, path)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(format_table(path))
        lines += ["%s = %s" % (format_key(k), format_value(v)) for k, v in values.items()]
        return "\n".join(lines) + "\n"
    indent = re.match(r"^\s*", lines[start]).group(0) + "  "
    pending = dict(values)
    for index in range(start + 1, end):
        key = _key_of(lines[index])
        if key in pending:
            own_indent = re.match(r"^\s*", lines[index]).group(0)
            lines[index] = "%s%s = %s" % (
                own_indent,
                format_key(key),
                format_value(pending.pop(key)),
            )
    # New keys go right after the last non-blank line of the table.
    insert_at = end
    while insert_at - 1 > start and not lines[insert_at - 1].strip():
        insert_at -= 1
    new_lines = ["%s%s = %s" % (indent, format_key(k), format_value(v)) for k, v in pending.items()]
    lines[insert_at:insert_at] = new_lines
    return "\n".join(lines) + "\n"


def remove_table(text, path):
    """Return text without the table (header and its keys). Sub-tables stay."""
    lines = text.splitlines()
    start, end = _table_bounds(lines, path)
    if start is None:
        return text
    del lines[start:end]
    return "\n".join(lines) + ("\n" if lines else "")


def get_table(parsed, path):
    node = parsed
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
