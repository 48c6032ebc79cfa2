# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared preflight of every role: each setting against its grammar or range.

The grammar of each setting lives beside the role's argument specs, in its
meta/settings.yml (per entry point, as argument_specs.yml is). This action reads that file
from the role of the task that calls it, evaluates each entry with the task's variables,
and fails with one sentence per setting that does not fit (module_utils/validation).
A systemd calendar that passes those checks is then read by the managed host's own
`systemd-analyze calendar`, in check mode too: a unit with a calendar systemd refuses would
otherwise be written and only then fail to load.
"""

from __future__ import annotations

import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

from ansible_collections.privreg.registry.plugins.module_utils import validation

SETTINGS_FILE = os.path.join("meta", "settings.yml")
# What an entry may say besides the kind; the rest are options of the kind's check.
ENTRY_KEYS = frozenset(("kind", "when", "value", "hint"))
# Kinds whose last word belongs to the managed host's systemd: the command that reads the
# value there, what the value must be, and an example.
HOST_CHECKED_KINDS = {
    "systemd_calendar": ("systemd-analyze calendar --", "a calendar", "Sun *-*-* 03:00:00"),
    "systemd_timespan": ("systemd-analyze timespan --", "a time span", "1h 30min"),
}


def _trusted(value):
    """The role's own file is a trusted source of templates, as its tasks are."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def load_settings(role_path, entry_point):
    """{name: {kind, ...}} of one entry point of a role's meta/settings.yml (raw)."""
    import yaml  # noqa: PLC0415 (the controller's PyYAML, only needed here)

    with open(os.path.join(role_path, SETTINGS_FILE), encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    entries = document.get(entry_point)
    if not isinstance(entries, dict):
        raise AnsibleActionFail(
            "%s has no entry point %r" % (os.path.join(role_path, SETTINGS_FILE), entry_point)
        )
    return {
        name: ({"kind": entry} if isinstance(entry, str) else dict(entry))
        for name, entry in entries.items()
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("entry_point",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        entry_point = self._task.args.get("entry_point", "main")
        role = self._task._role
        if role is None:
            raise AnsibleActionFail(
                "check_settings runs inside a role (it reads the role's %s)" % SETTINGS_FILE
            )
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        checks = []
        for name, entry in load_settings(role._role_path, entry_point).items():
            entry = _trusted(entry)
            if "when" in entry and not templar.evaluate_conditional(entry["when"]):
                continue
            if "value" in entry:
                value = templar.template(entry["value"])
            elif name in task_vars:
                value = templar.template(task_vars[name])
            else:
                raise AnsibleActionFail("%s: %s is not defined" % (SETTINGS_FILE, name))
            options = {
                key: templar.template(item) for key, item in entry.items() if key not in ENTRY_KEYS
            }
            checks.append(
                {
                    "name": name,
                    "value": value,
                    "kind": templar.template(entry["kind"]),
                    "hint": templar.template(entry.get("hint", "")),
                    "options": options,
                }
            )
        try:
            problems = validation.setting_problems(checks)
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleActionFail("%s: %s" % (SETTINGS_FILE, exc)) from exc
        failed = {problem.split(" ", 1)[0] for problem in problems}
        for check in checks:
            if check["kind"] in HOST_CHECKED_KINDS and check["name"] not in failed:
                problem = self._host_problem(check)
                if problem:
                    problems.append(problem)
        result.update(changed=False, checked=len(checks))
        if problems:
            result.update(failed=True, msg="%s." % ". ".join(problems))
        return result

    def _host_problem(self, check):
        """The managed host's verdict on a setting of a HOST_CHECKED_KINDS kind, or None."""
        command, what, example = HOST_CHECKED_KINDS[check["kind"]]
        answer = self._low_level_execute_command(
            "%s %s" % (command, shlex.quote(str(check["value"])))
        )
        if answer.get("rc") == 0:
            return None
        said = (answer.get("stderr") or answer.get("stdout") or "").strip().splitlines()
        return (
            "%s (%r) is not %s this host's systemd can read (%s); write it as "
            "systemd.time(7) describes, for example '%s', and check it with `%s`"
            % (
                check["name"],
                check["value"],
                what,
                said[-1] if said else "rc %s" % answer.get("rc"),
                example,
                command[:-3],
            )
        )
