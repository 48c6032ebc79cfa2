"""Every role's meta/argument_specs.yml matches its defaults/main.yml, variable for variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_and_defaults_agree(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, spec in options.items():
        assert name.startswith(role.name + "_"), "%s does not carry the role's prefix" % name
        assert spec.get("description"), "%s has no description" % name
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue  # templated defaults are described, not compared
        assert spec.get("default") == value, "%s: spec default %r, defaults %r" % (
            name,
            spec.get("default"),
            value,
        )


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_internal_variables_start_with_underscore(role):
    internal = load(role / "vars" / "main.yml") if (role / "vars" / "main.yml").exists() else {}
    for name in internal:
        assert name.startswith("_" + role.name + "_"), name
