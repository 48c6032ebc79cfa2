"""Every playbook a Molecule scenario names exists.

Molecule treats a missing playbook as a step to skip ("Missing playbook"), so a scenario
whose prepare playbook moved would go on without its S3 store and fail later, far from the
cause, or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MOLECULE = Path(__file__).resolve().parents[2] / "extensions" / "molecule"
SCENARIOS = sorted(path.parent for path in MOLECULE.glob("*/molecule.yml"))
SHARED = yaml.safe_load((MOLECULE / "config.yml").read_text())


def playbooks(scenario):
    own = yaml.safe_load((scenario / "molecule.yml").read_text()) or {}
    named = dict(SHARED.get("provisioner", {}).get("playbooks", {}))
    named.update((own.get("provisioner") or {}).get("playbooks") or {})
    return named


def test_the_scenarios_are_found():
    assert len(SCENARIOS) >= 8, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_every_playbook_a_scenario_names_exists(scenario):
    missing = {
        step: path for step, path in playbooks(scenario).items() if not (scenario / path).is_file()
    }
    assert missing == {}, missing
