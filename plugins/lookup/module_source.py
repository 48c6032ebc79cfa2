# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: module_source
author:
  - privreg.registry contributors (@privreg)
version_added: 0.3.0
short_description: The source of one of the collection's module_utils, to ship to a host
description:
  - Some logic runs both on the controller (a role's preflight, through a filter) and in a
    service on a host (the token service's access rules). It is written once, as a module of
    the collection's C(plugins/module_utils), and this lookup returns that module's source
    so that a role can install it beside the service - found by import, wherever the
    collection is installed, not by a path into the collection's tree.
  - Only modules without imports of Ansible or of the collection can run on their own on a host.
options:
  _terms:
    description: Names of modules in the collection's C(plugins/module_utils) (without C(.py)).
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Install the access rules' matcher beside the token service
  ansible.builtin.copy:
    content: "{{ lookup('privreg.registry.module_source', 'token_acl') }}"
    dest: /usr/local/lib/privreg-registry-token/token_acl.py
    mode: "0644"
"""

RETURN = r"""
_raw:
  description: The source text of each module.
  type: list
  elements: str
"""

import importlib.util
import re

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

PACKAGE = "ansible_collections.privreg.registry.plugins.module_utils"
NAME = re.compile(r"[a-z_][a-z0-9_]*")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        sources = []
        for term in terms:
            if not NAME.fullmatch(str(term)):
                raise AnsibleLookupError("%r is not the name of a module_utils module" % (term,))
            spec = importlib.util.find_spec("%s.%s" % (PACKAGE, term))
            if spec is None or not spec.origin:
                raise AnsibleLookupError("the collection has no module_utils/%s.py" % term)
            with open(spec.origin, encoding="utf-8") as handle:
                sources.append(handle.read())
        return sources
