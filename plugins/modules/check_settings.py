#!/usr/bin/python
# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check_settings
short_description: Check a role's settings against their grammar and ranges
version_added: 0.3.0
description:
  - The shared preflight of the collection's roles. It reads the calling role's
    C(meta/settings.yml), which names, per entry point, the kind of each setting that reaches
    a file, a command or a URL (a port, a data directory, a host name, a duration, a secret
    on one line, ...), and checks every such setting's value with the task's variables.
  - It fails with one sentence per setting that does not fit - the variable, what is wrong
    and the fix - and never shows the value of a secret.
  - "An entry is C(NAME: KIND) or a mapping with C(kind), optional C(when) (a condition - the
    entry applies only then), C(value) (an expression to check instead of the variable),
    C(hint) (words added to the sentence) and the kind's options (C(low) and C(high) for
    integers, C(wildcard) for host names, C(schemes) for URLs)."
  - It runs on the controller and changes nothing.
author:
  - privreg.registry contributors (@privreg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  entry_point:
    description: The entry point of the role whose settings are checked (a key of C(meta/settings.yml)).
    type: str
    default: main
"""

EXAMPLES = r"""
# roles/ROLE/tasks/preflight.yml
- name: Refuse settings outside their grammar or range
  privreg.registry.check_settings:

# roles/ROLE/meta/settings.yml
# main:
#   myrole_port: port
#   myrole_timeout: {kind: integer, low: 1, high: 3600}
#   myrole_bucket: {kind: bucket, when: "myrole_driver == 's3'"}
"""

RETURN = r"""
checked:
  description: How many settings were checked.
  returned: always
  type: int
"""
