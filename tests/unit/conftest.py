"""Make the checkout importable as ansible_collections.privreg.registry and run modules."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".cache" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "privreg" / "registry"
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, LINK)
sys.path.insert(0, str(COLLECTIONS))

from ansible.module_utils.testing import patch_module_args  # noqa: E402


@pytest.fixture
def run_module(capsys):
    """Run a module's main() with args; return (exit_code, result dict)."""

    def _run(main, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(SystemExit) as exc:
            main()
        out = capsys.readouterr().out
        return exc.value.code, json.loads(out)

    return _run
