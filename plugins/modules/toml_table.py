#!/usr/bin/python
# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: toml_table
short_description: Set or remove keys of one table in a TOML file, keeping everything else
version_added: 0.1.0
description:
  - Edits one table of a TOML file such as containerd's C(config.toml) in place. Other tables,
    keys, comments and their order stay as they were.
  - The table is found whatever its indentation or quoting and appended when missing.
  - When the managed host's Python has C(tomllib) (3.11 and later) the result is parsed before
    it is written; a file that would not parse, or a table that would not hold the values, is
    refused and left untouched.
  - Written atomically; the diff masks O(secret_values).
author:
  - privreg.registry contributors
attributes:
  check_mode:
    support: full
    description: Reports the change without writing.
  diff_mode:
    support: full
    description: Shows the file before and after, with secret values masked.
options:
  path:
    description: The TOML file. Created when missing and O(state=present).
    type: path
    required: true
  table:
    description: Key path of the table, e.g. C([plugins, io.containerd.grpc.v1.cri, registry]).
    type: list
    elements: str
    required: true
  values:
    description: Keys to set in the table (strings, booleans, integers or lists of them).
    type: dict
    default: {}
  secret_values:
    description: Keys to set whose values never appear in output or diff (passwords).
    type: dict
    default: {}
  state:
    description: V(present) sets the keys; V(absent) removes the whole table.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description:
      - Mode of the file. Use C(0600) when it holds secrets.
      - Unset, an existing file keeps its mode and a new one gets C(0644).
    type: raw
"""

EXAMPLES = r"""
- name: Let containerd read registry settings from certs.d
  privreg.registry.toml_table:
    path: /etc/containerd/config.toml
    table: [plugins, io.containerd.grpc.v1.cri, registry]
    values:
      config_path: /etc/containerd/certs.d
  notify: Restart containerd

- name: Credentials for the CRI plugin
  privreg.registry.toml_table:
    path: /etc/containerd/config.toml
    table: [plugins, io.containerd.grpc.v1.cri, registry, configs, "registry.example.com:5000", auth]
    secret_values:
      username: ci
      password: "{{ vault_registry_ci_password }}"
    mode: "0600"
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
table:
  description: The table as it appears in the file's header.
  returned: always
  type: str
  sample: '[plugins."io.containerd.grpc.v1.cri".registry]'
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.privreg.registry.plugins.module_utils import toml_tables
from ansible_collections.privreg.registry.plugins.module_utils.fileio import (
    atomic_write,
    ensure_attributes,
    read_bytes,
)

try:
    import tomllib
except ImportError:  # Python < 3.11: the edit is not parsed before writing
    tomllib = None


def _masked(text, secret_keys):
    if not secret_keys:
        return text
    pattern = re.compile(
        r"^(\s*(?:%s)\s*=\s*).*$" % "|".join(re.escape(k) for k in secret_keys), re.MULTILINE
    )
    return pattern.sub(r"\1********", text)


def _mode_for_write(path, mode):
    if mode is not None:
        return int(str(mode), 8)
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o644


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            table=dict(type="list", elements="str", required=True),
            values=dict(type="dict", default={}),
            secret_values=dict(type="dict", default={}, no_log=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            mode=dict(type="raw"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    values = dict(p["values"], **p["secret_values"])
    current = read_bytes(p["path"])
    before = to_text(current or b"")
    try:
        if p["state"] == "present":
            after = toml_tables.set_values(before, p["table"], values)
        else:
            after = toml_tables.remove_table(before, p["table"])
        if tomllib is not None:
            parsed = tomllib.loads(after)
            table = toml_tables.get_table(parsed, p["table"])
            if p["state"] == "present" and (
                table is None or any(table.get(k) != v for k, v in values.items())
            ):
                raise toml_tables.TomlEditError("the edited table does not hold the values")
    except (toml_tables.TomlEditError, ValueError) as exc:
        module.fail_json(
            msg="Refusing to edit %s: %s. The file is left as it was; fix it by hand or "
            "check the table name." % (p["path"], exc)
        )

    changed = after != before and not (current is None and p["state"] == "absent")
    if changed and not module.check_mode:
        atomic_write(p["path"], to_bytes(after), _mode_for_write(p["path"], p["mode"]))
    if p["mode"] is not None and read_bytes(p["path"]) is not None:
        changed = ensure_attributes(module, p["path"], p["mode"], None, None, changed)
    result = dict(changed=changed, path=p["path"], table=toml_tables.format_table(p["table"]))
    if module._diff:
        secret_keys = list(p["secret_values"])
        result["diff"] = dict(
            before_header=p["path"],
            after_header=p["path"],
            before=_masked(before, secret_keys),
            after=_masked(after, secret_keys),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
