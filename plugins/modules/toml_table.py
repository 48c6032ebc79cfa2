#!/usr/bin/python
# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: toml_table
short_description: Set or remove keys of one table in a TOML file, keeping everything else
version_added: 0.1.0
description:
  - Edits one table of a TOML file such as containerd's C(config.toml) in place. Other tables,
    keys, comments and their order stay as they were.
  - Works through tomlkit, the maintained style-preserving TOML library, rather than by
    editing lines. What would be written is parsed again and must hold the values; a file
    that does not parse is refused and left untouched.
  - Missing tables are created (tables that only hold tables get no header of their own).
  - Written atomically; the diff masks O(secret_values).
author:
  - privreg.registry contributors (@privreg)
requirements:
  - tomlkit on the managed host (Debian and Ubuntu - python3-tomlkit).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details: Reports the change without writing.
  diff_mode:
    support: full
    details: Shows the file before and after, with secret values masked.
  platform:
    platforms: posix
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
notes:
  - Unset O(mode) keeps an existing file's mode and gives a new one C(0644). Use C(0600)
    when the file holds secrets.
  - For containerd 2.x (config C(version = 3)) the CRI registry settings live under
    C(plugins."io.containerd.cri.v1.images".registry); for 1.x (C(version = 2)) under
    C(plugins."io.containerd.grpc.v1.cri".registry).
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.privreg.registry.plugins.module_utils import toml_tables
from ansible_collections.privreg.registry.plugins.module_utils.module_support import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            table=dict(type="list", elements="str", required=True),
            values=dict(type="dict", default={}),
            secret_values=dict(type="dict", default={}, no_log=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_backend(
        module,
        toml_tables.TOMLKIT,
        toml_tables.TomlTable,
        toml_tables.TomlEditError,
        lambda exc: (
            "Refusing to edit %s: %s. The file is left as it was; fix it by hand or "
            "check the table name." % (module.params["path"], exc)
        ),
    )


if __name__ == "__main__":
    main()
