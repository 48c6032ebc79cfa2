"""toml_table: containerd's config.toml edited in place, nothing else disturbed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import tomllib

from ansible_collections.privreg.registry.plugins.module_utils import toml_tables
from ansible_collections.privreg.registry.plugins.modules import toml_table

# As Debian 13's containerd package ships it, with a comment an operator added.
DEBIAN_CONFIG = """version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    # keep me: an operator's note
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""
REGISTRY = ["plugins", "io.containerd.grpc.v1.cri", "registry"]
AUTH = REGISTRY + ["configs", "registry:5000", "auth"]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(DEBIAN_CONFIG)
    return path


@pytest.fixture
def toml_module(run_module, config):
    def _run(check_mode=False, diff=False, **args):
        args.setdefault("path", str(config))
        return run_module(toml_table.main, args, check_mode=check_mode, diff=diff)

    return _run


def parsed(path):
    return tomllib.loads(Path(path).read_text())


def test_adds_the_table_and_keeps_the_rest(toml_module, config):
    code, result = toml_module(table=REGISTRY, values={"config_path": "/etc/containerd/certs.d"})
    assert code == 0
    assert result["changed"]
    assert result["table"] == '[plugins."io.containerd.grpc.v1.cri".registry]'
    text = config.read_text()
    # Every line the operator had is still there, comment included, in the same order.
    remaining = iter(text.splitlines())
    assert all(line in remaining for line in DEBIAN_CONFIG.splitlines())
    data = parsed(config)
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["registry"] == {
        "config_path": "/etc/containerd/certs.d"
    }
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"] == "/usr/lib/cni"


def test_second_run_changes_nothing(toml_module, config):
    toml_module(table=REGISTRY, values={"config_path": "/etc/containerd/certs.d"})
    before = config.read_text()
    result = toml_module(table=REGISTRY, values={"config_path": "/etc/containerd/certs.d"})[1]
    assert result["changed"] is False
    assert config.read_text() == before


def test_existing_indented_table_is_edited_in_place(toml_module, config):
    result = toml_module(table=REGISTRY[:2] + ["cni"], values={"bin_dir": "/opt/cni/bin"})[1]
    assert result["changed"]
    text = config.read_text()
    assert '      bin_dir = "/opt/cni/bin"' in text
    assert "# keep me" in text
    assert text.count('[plugins."io.containerd.grpc.v1.cri".cni]') == 1
    assert (
        parsed(config)["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["conf_dir"]
        == "/etc/cni/net.d"
    )


def test_new_key_joins_an_existing_table(toml_module, config):
    toml_module(table=REGISTRY[:2] + ["cni"], values={"max_conf_num": 1})
    cni = parsed(config)["plugins"]["io.containerd.grpc.v1.cri"]["cni"]
    assert cni == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d", "max_conf_num": 1}


def test_secret_values_are_masked_in_diff(toml_module, config):
    result = toml_module(
        table=AUTH, secret_values={"username": "ci", "password": "s3cr3t"}, mode="0600", diff=True
    )[1]
    assert "s3cr3t" not in str(result)
    assert 'password = "********"' in result["diff"]["after"]
    assert parsed(config)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["configs"][
        "registry:5000"
    ]["auth"] == {"username": "ci", "password": "s3cr3t"}
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600


def test_absent_removes_only_that_table(toml_module, config):
    toml_module(table=REGISTRY, values={"config_path": "/etc/containerd/certs.d"})
    toml_module(table=AUTH, secret_values={"username": "ci", "password": "x"})
    result = toml_module(table=AUTH, state="absent")[1]
    assert result["changed"]
    registry = parsed(config)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
    assert registry == {"config_path": "/etc/containerd/certs.d"}
    again = toml_module(table=AUTH, state="absent")[1]
    assert again["changed"] is False


def test_check_mode_writes_nothing(toml_module, config):
    result = toml_module(table=REGISTRY, values={"config_path": "/x"}, check_mode=True)[1]
    assert result["changed"]
    assert config.read_text() == DEBIAN_CONFIG


def test_missing_file_is_created(toml_module, tmp_path):
    path = tmp_path / "new" / "config.toml"
    path.parent.mkdir()
    result = toml_module(path=str(path), table=REGISTRY, values={"config_path": "/c"})[1]
    assert result["changed"]
    assert parsed(path)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]


def test_file_that_would_not_parse_is_refused_and_left_alone(toml_module, config):
    broken = DEBIAN_CONFIG + '[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = \n'
    config.write_text(broken)
    code, result = toml_module(table=REGISTRY, values={"other": "x"})
    assert code == 1
    assert "Refusing to edit" in result["msg"]
    assert config.read_text() == broken


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (REGISTRY, '[plugins."io.containerd.grpc.v1.cri".registry]'),
        (["a", "b.c", "d"], '[a."b.c".d]'),
        (["configs", "reg:5000", "auth"], '[configs."reg:5000".auth]'),
    ],
)
def test_table_headers_are_written_as_toml_quotes_them(path, expected):
    assert toml_tables.format_table(path) == expected


def test_containerd_2_tables_are_added_beside_a_version_3_config(toml_module, tmp_path):
    """containerd 2.x (config version 3) keeps the CRI registry under cri.v1.images."""
    path = tmp_path / "config.toml"
    path.write_text(
        'version = 3\n\n[plugins."io.containerd.cri.v1.images"]\n  snapshotter = "overlayfs"\n'
    )
    images = ["plugins", "io.containerd.cri.v1.images", "registry"]
    result = toml_module(path=str(path), table=images, values={"config_path": "/c"})[1]
    assert result["changed"]
    data = parsed(path)
    assert data["version"] == 3
    assert data["plugins"]["io.containerd.cri.v1.images"] == {
        "snapshotter": "overlayfs",
        "registry": {"config_path": "/c"},
    }


def test_mode_is_kept_unless_given(toml_module, config):
    os.chmod(config, 0o600)
    toml_module(table=REGISTRY, values={"config_path": "/c"})
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    again = toml_module(table=REGISTRY, values={"config_path": "/c"})[1]
    assert again["changed"] is False
