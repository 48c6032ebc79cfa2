#!/usr/bin/python
# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_htpasswd
short_description: Keep the registry's htpasswd file, bcrypt entries only
version_added: 0.1.0
description:
  - Adds, updates and removes users in an htpasswd file as the registry's C(htpasswd)
    auth reads it. Every entry written is bcrypt (the registry ignores other hashes).
  - A user's entry is rewritten only when the password no longer verifies against it, so
    repeated runs change nothing.
  - With O(exclusive=true), users that are not listed are removed.
  - The file is written atomically; the diff shows user names only, never hashes or passwords.
  - The registry reads the file once at start; restart it when this module reports a change.
author:
  - privreg.registry contributors (@privreg)
requirements:
  - passlib (or libpass, its maintained drop-in) with bcrypt, on the managed host.
    Debian - python3-passlib and python3-bcrypt.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details: Reports which users would be added, updated or removed.
  diff_mode:
    support: full
    details: Lists user names before and after; passwords and hashes never appear.
  platform:
    platforms: posix
options:
  path:
    description: Path of the htpasswd file. It is created when missing.
    type: path
    required: true
  users:
    description: Users to keep in the file (or remove, with C(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name. It may not contain C(:) and may not be empty.
        type: str
        required: true
      password:
        description: Password for the user. Required and not empty when O(users[].state=present).
        type: str
      state:
        description: Whether the user should be in the file.
        type: str
        choices: [present, absent]
        default: present
  exclusive:
    description: Remove every user that O(users) does not list as present.
    type: bool
    default: false
  cost:
    description:
      - bcrypt cost of the hashes. The registry checks the hash on every request with
        basic auth, so very high costs slow down pushes and pulls.
      - A listed user whose entry has another cost is rehashed with this one; unlisted
        users keep theirs (their passwords are not known here).
    type: int
    default: 10
notes:
  - O(mode) defaults to C(0600); the file holds password hashes.
"""

EXAMPLES = r"""
- name: Registry users, nobody else
  privreg.registry.registry_htpasswd:
    path: /opt/registry/security/htpasswd
    exclusive: true
    users:
      - name: ci
        password: "{{ vault_registry_ci_password }}"
      - name: alice
        password: "{{ vault_registry_alice_password }}"
  notify: Restart registry

- name: Remove a user who left
  privreg.registry.registry_htpasswd:
    path: /opt/registry/security/htpasswd
    users:
      - name: bob
        state: absent
"""

RETURN = r"""
added:
  description: Users that were (or would be) added.
  returned: always
  type: list
  elements: str
  sample: [alice]
updated:
  description: Users whose password was (or would be) rehashed.
  returned: always
  type: list
  elements: str
removed:
  description: Users that were (or would be) removed.
  returned: always
  type: list
  elements: str
users:
  description: User names in the file after this run.
  returned: always
  type: list
  elements: str
path:
  description: Path of the htpasswd file.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.privreg.registry.plugins.module_utils import htpasswd
from ansible_collections.privreg.registry.plugins.module_utils.module_support import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            users=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    password=dict(type="str", no_log=True),
                    state=dict(type="str", choices=["present", "absent"], default="present"),
                ),
            ),
            exclusive=dict(type="bool", default=False),
            cost=dict(type="int", default=10),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_backend(
        module,
        htpasswd.PASSLIB,
        htpasswd.HtpasswdFile,
        htpasswd.HtpasswdError,
        lambda exc: "%s (path=%s)" % (exc, module.params["path"]),
    )


if __name__ == "__main__":
    main()
