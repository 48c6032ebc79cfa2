"""Every role's meta/argument_specs.yml matches its defaults/main.yml, variable for variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def entry_points(role):
    return load(role / "meta" / "argument_specs.yml")["argument_specs"]


def all_options(role):
    """Each option of any entry point (an option several entry points share is one)."""
    options = {}
    for entry in entry_points(role).values():
        options.update(entry.get("options", {}))
    return options


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_default_is_a_documented_option(role):
    defaults = load(role / "defaults" / "main.yml")
    options = all_options(role)
    assert sorted(set(defaults) - set(options)) == []


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_optional_option_has_its_default_in_defaults(role):
    defaults = load(role / "defaults" / "main.yml")
    for name, spec in all_options(role).items():
        if spec.get("required"):
            assert name not in defaults, "%s is required: it cannot have a default" % name
        else:
            assert name in defaults, "%s is optional but defaults/main.yml lacks it" % name


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_spec_defaults_equal_the_role_defaults(role):
    defaults = load(role / "defaults" / "main.yml")
    for name, spec in all_options(role).items():
        assert name.startswith(role.name + "_"), "%s does not carry the role's prefix" % name
        assert spec.get("description"), "%s has no description" % name
        if name not in defaults:
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            # A computed default is described in words; a Jinja string as a typed default
            # is what antsibull-docs rejects.
            assert "default" not in spec, "%s: describe the computed default instead" % name
            assert "default" in str(spec["description"]).lower(), name
            continue
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


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_entry_point_has_its_tasks_file(role):
    for entry in entry_points(role):
        assert (role / "tasks" / ("%s.yml" % entry)).exists(), entry


def settings_of(role):
    path = role / "meta" / "settings.yml"
    return load(path) if path.exists() else {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_checked_setting_is_an_option_of_its_entry_point(role):
    """meta/settings.yml sits beside argument_specs.yml: the same entry points, and only
    their options (a renamed or removed variable cannot linger there unchecked)."""
    from ansible_collections.privreg.registry.plugins.module_utils.validation import CHECKS

    specs = entry_points(role)
    for entry, settings in settings_of(role).items():
        assert entry in specs, "%s: settings for an entry point that does not exist" % entry
        options = specs[entry].get("options", {})
        for name, setting in settings.items():
            assert name in options, "%s.%s is checked but not an option of that entry point" % (
                entry,
                name,
            )
            kind = setting if isinstance(setting, str) else setting["kind"]
            assert "{{" in kind or kind in CHECKS, "%s: unknown kind %s" % (name, kind)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_a_role_with_a_preflight_checks_its_settings(role):
    """Every role whose tasks write settings has its grammar file, and its preflight runs
    the shared check."""
    preflight = role / "tasks" / "preflight.yml"
    if not preflight.exists():
        return
    assert settings_of(role), "%s has a preflight but no meta/settings.yml" % role.name
    assert "privreg.registry.check_settings" in preflight.read_text()
