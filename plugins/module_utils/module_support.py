# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module of the collection does around its backend, written once.

A module_utils file that imports an optional library records the outcome in a Dependency
(the import itself stays a plain import, guarded where it is written). A module declares
its interface, then run_backend checks the library (Ansible's missing-library message,
naming the packages that bring it), runs the backend, and reports its result or its error.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib


class Dependency:
    """One optional library: found until its import failed."""

    def __init__(self, name, packages):
        self.name = name
        self.packages = packages
        self.error = None

    def missing(self, error):
        """Record the ImportError of the guarded import."""
        self.error = error

    @property
    def found(self):
        return self.error is None

    def require(self, module):
        """Fail the module, naming the library and its packages, when it is missing."""
        if self.error is not None:
            module.fail_json(
                msg=missing_required_lib("%s (%s)" % (self.name, self.packages)),
                exception=str(self.error),
            )


def run_backend(module, dependency, backend, error, describe=str):
    """Require the library, run backend(module).run(), exit with its result; an `error`
    becomes the module's failure message (`describe` words it)."""
    dependency.require(module)
    try:
        result = backend(module).run()
    except error as exc:
        module.fail_json(msg=describe(exc))
    module.exit_json(**result)
