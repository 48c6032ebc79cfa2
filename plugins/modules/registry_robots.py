#!/usr/bin/python
# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_robots
short_description: Keep the token service's robot accounts (scoped, expiring credentials for CI)
version_added: 0.3.0
description:
  - Writes the robots file the collection's token service reads (C(robots.json)) - for each
    robot its bcrypt hash, its expiry and its own access rules. It never holds a secret.
  - A robot signs in as O(prefix) followed by its name, and gets exactly the access its
    rules give; the access rules of people do not apply to it. From its expiry on, the
    service refuses it; a robot left out of O(robots) is removed. The service reads the file
    again when it changes, so both take effect at the next sign-in, without a restart.
  - A robot's hash is made again only when its secret is given and no longer verifies, so
    repeated runs change nothing. A robot given without a secret keeps the hash it has.
  - The file is written atomically; the diff shows names, expiries and rules, never hashes
    or secrets.
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
    details: Reports which robots would be added, updated or removed.
  diff_mode:
    support: full
    details: Robots, expiries and rules before and after; secrets and hashes never appear.
  platform:
    platforms: posix
options:
  path:
    description: Path of the robots file. It is created when missing.
    type: path
    required: true
  robots:
    description: Every robot the file holds; any other robot is removed.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The robot's name (1-64 lower-case letters, digits, C(.), C(_), C(-)).
        type: str
        required: true
      secret:
        description:
          - The robot's secret, at least 16 characters and at most 72 bytes.
          - Without it, the robot keeps the hash it has; a robot not yet in the file needs one.
        type: str
      expires:
        description:
          - When the robot stops working, in UTC - a date (V(2027-06-30), from the start of
            that day) or a moment (V(2027-06-30T18:00:00Z)) - or V(never).
        type: str
        required: true
      access:
        description:
          - The robot's rules, each C(repository) (a glob - C(*) any characters including
            C(/), C(?) one) or C(catalog=true), with C(actions) (C(pull), C(push),
            C(delete), C(*)). The first rule matching a repository decides.
        type: list
        elements: dict
        required: true
      description:
        description: What the robot is for (not written to the file).
        type: str
  prefix:
    description: What every robot's account name starts with.
    type: str
    default: robot$
  cost:
    description: bcrypt cost of the hashes (each sign-in of a robot checks one).
    type: int
    default: 10
notes:
  - O(mode) defaults to C(0640); give the file the service's group.
seealso:
  - module: privreg.registry.registry_htpasswd
"""

EXAMPLES = r"""
- name: The robots of CI
  privreg.registry.registry_robots:
    path: /opt/registry/token/robots.json
    group: registry-token
    robots:
      - name: ci-builder
        secret: "{{ vault_registry_robot_ci_builder }}"
        expires: "2027-06-30"
        access:
          - {repository: "team/*", actions: [pull, push]}
      - name: deployer
        secret: "{{ vault_registry_robot_deployer }}"
        expires: never
        access:
          - {repository: "team/app", actions: [pull]}
"""

RETURN = r"""
added:
  description: Robots (account names) that were (or would be) added.
  returned: always
  type: list
  elements: str
  sample: [robot$ci-builder]
updated:
  description: Robots whose secret, expiry or rules changed (or would change).
  returned: always
  type: list
  elements: str
removed:
  description: Robots that were (or would be) removed.
  returned: always
  type: list
  elements: str
robots:
  description: The robots (account names) in the file after this run.
  returned: always
  type: list
  elements: str
path:
  description: Path of the robots file.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.privreg.registry.plugins.module_utils import robots
from ansible_collections.privreg.registry.plugins.module_utils.module_support import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            robots=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    secret=dict(type="str", no_log=True),
                    expires=dict(type="str", required=True),
                    access=dict(type="list", elements="dict", required=True),
                    description=dict(type="str"),
                ),
            ),
            prefix=dict(type="str", default="robot$"),
            cost=dict(type="int", default=10),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_backend(module, robots.PASSLIB, robots.RobotsFile, robots.RobotsError)


if __name__ == "__main__":
    main()
