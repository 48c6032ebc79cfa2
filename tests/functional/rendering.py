"""Render a role's template the way the role does: its defaults, its vars, then overrides,
through Ansible's own template module (filters of the collection included)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path


def render_template(role: Path, template: str, dest: Path, settings: dict) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as overrides:
        json.dump(settings, overrides)
    subprocess.run(
        [
            "ansible", "localhost", "-c", "local", "-m", "ansible.builtin.template",
            "-a", "src=%s dest=%s" % (role / "templates" / template, dest),
            "-e", "@%s" % (role / "defaults" / "main.yml"),
            "-e", "@%s" % (role / "vars" / "main.yml"),
            "-e", "@%s" % overrides.name,
        ],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    Path(overrides.name).unlink()
    return dest
