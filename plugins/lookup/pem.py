# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: pem
author:
  - privreg.registry contributors (@privreg)
version_added: 0.2.0
short_description: PEM material given as text or as a file on the controller
description:
  - The roles take certificates and keys either as the PEM text itself (from vault, for
    keys) or as a path on the controller. This returns the PEM text in both cases, ending
    in one newline.
  - A value that contains C(-----BEGIN) is the material; anything else is a path, found
    the way the P(ansible.builtin.file#lookup) lookup finds files.
options:
  _terms:
    description: PEM texts or controller paths.
    required: true
    type: list
    elements: str
notes:
  - Keys read with this lookup are secrets; use it in tasks with C(no_log).
"""

EXAMPLES = r"""
- name: Install the operator's certificate, whether given as text or as a file
  ansible.builtin.copy:
    content: "{{ lookup('privreg.registry.pem', registry_server_tls_certificate) }}"
    dest: /opt/registry/certs/server.crt
    mode: "0644"
"""

RETURN = r"""
_raw:
  description: The PEM text of each term.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        results = []
        for term in terms:
            value = to_text(term)
            if "-----BEGIN" not in value:
                path = self.find_file_in_search_path(variables, "files", value, ignore_missing=True)
                if not path:
                    # Only something shaped like a path is repeated: a mangled key is not.
                    shown = (
                        value if len(value) < 256 and not any(c.isspace() for c in value) else ""
                    )
                    raise AnsibleLookupError(
                        "the value %s is neither PEM text (it has no -----BEGIN line) nor a "
                        "file on the controller" % (repr(shown) if shown else "given")
                    )
                with open(path, "rb") as handle:
                    value = to_text(handle.read())
                if "-----BEGIN" not in value:
                    raise AnsibleLookupError("%s holds no PEM material" % path)
            results.append(value.strip() + "\n")
        return results
