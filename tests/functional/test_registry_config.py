"""registry_server's config.yml as rendered for the running registry, its read-only twin
(garbage collection) and the throwaway storage probe: each is what it should be."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rendering import render_template

ROLE = Path(__file__).resolve().parents[2] / "roles" / "registry_server"
S3 = {
    "registry_server_storage_driver": "s3",
    "registry_server_storage_s3_bucket": "registry",
    "registry_server_storage_s3_region": "us-east-1",
    "registry_server_storage_s3_regionendpoint": "http://storage:8333",
}


@pytest.fixture
def config(tmp_path):
    def _render(render, **overrides):
        settings = dict(S3, _registry_server_render=render, **overrides)
        dest = render_template(ROLE, "config.yml.j2", tmp_path / ("%s.yml" % render), settings)
        return yaml.safe_load(dest.read_text())

    return _render


def test_the_running_registry_is_writable_with_tls_auth_and_debug(config):
    main = config("main")
    assert main["storage"]["maintenance"]["readonly"]["enabled"] is False
    assert main["http"]["tls"]["minimumtls"] == "tls1.2"
    assert main["auth"]["htpasswd"]["path"] == "/auth/htpasswd"
    assert main["http"]["debug"]["addr"] == ":5001"
    assert set(main["storage"]) - {"delete", "redirect", "cache", "maintenance"} == {"s3"}


def test_the_gc_twin_is_read_only(config):
    assert config("readonly")["storage"]["maintenance"]["readonly"]["enabled"] is True


def test_the_storage_probe_is_read_only_with_a_login_and_nothing_else(config):
    """The probe holds the production keys: it may list, never write, and only for the
    role's throwaway user; no TLS material, debug server or health checks of its own."""
    probe = config("probe")
    assert probe["storage"]["maintenance"]["readonly"]["enabled"] is True
    assert probe["storage"]["maintenance"]["uploadpurging"]["enabled"] is False
    assert probe["auth"]["htpasswd"] == {"realm": "storage probe", "path": "/auth/htpasswd"}
    assert "tls" not in probe["http"]
    assert "debug" not in probe["http"]
    assert probe["health"]["storagedriver"]["enabled"] is False
    # The same store as the running registry would use.
    assert probe["storage"]["s3"] == config("main")["storage"]["s3"]


def test_the_probe_keeps_its_login_when_the_registry_has_none(config):
    probe = config("probe", registry_server_auth_enabled=False)
    assert probe["auth"]["htpasswd"]["realm"] == "storage probe"


@pytest.mark.parametrize(
    ("image", "overrides", "expected"),
    [
        ("registry:3.1.1", {}, True),  # a custom endpoint: path-style on 3.x
        ("registry:3.1.1", {"registry_server_storage_s3_forcepathstyle": False}, None),
        ("registry:3.1.1", {"registry_server_storage_s3_regionendpoint": ""}, None),  # AWS
        ("registry:2.8.3", {}, None),  # 2.x has no such option
    ],
)
def test_forcepathstyle_is_written_for_3_x_with_a_custom_endpoint(
    config, image, overrides, expected
):
    main = config("main", registry_server_image=image, **overrides)
    assert main["storage"]["s3"].get("forcepathstyle") is expected


@pytest.mark.parametrize(
    ("image", "config_dir", "environment"),
    [
        ("registry:3.1.1", "/etc/distribution", {"OTEL_TRACES_EXPORTER": "none"}),
        ("registry:2.8.3", "/etc/docker/registry", None),
    ],
)
def test_compose_runs_each_line_with_its_config_path(tmp_path, image, config_dir, environment):
    settings = {"registry_server_image": image, "ansible_managed": "test"}
    dest = render_template(ROLE, "compose.yml.j2", tmp_path / "compose.yml", settings)
    service = yaml.safe_load(dest.read_text())["services"]["registry"]
    assert service["command"] == ["serve", config_dir + "/config.yml"]
    assert service.get("environment") == environment
    assert any(volume.endswith(":%s:ro" % config_dir) for volume in service["volumes"])


@pytest.mark.parametrize(
    ("image", "address_key", "address"),
    [("registry:3.1.1", "addrs", ["cache:6380"]), ("registry:2.8.3", "addr", "cache:6380")],
)
def test_a_redis_host_makes_the_shared_cache_in_each_lines_grammar(
    config, image, address_key, address
):
    redis = {"registry_server_redis_host": "cache", "registry_server_redis_port": 6380}
    main = config("main", registry_server_image=image, **redis)
    assert main["storage"]["cache"]["blobdescriptor"] == "redis"
    assert main["redis"][address_key] == address
    assert "password" not in main["redis"]  # from registry.env
    # The read-only twin shares the cache; the probe needs none.
    assert config("readonly", registry_server_image=image, **redis)["redis"] == main["redis"]
    probe = config("probe", registry_server_image=image, **redis)
    assert "redis" not in probe
    assert probe["storage"]["cache"]["blobdescriptor"] == "inmemory"


def test_without_a_redis_host_the_cache_stays_in_memory(config):
    main = config("main")
    assert main["storage"]["cache"]["blobdescriptor"] == "inmemory"
    assert "redis" not in main


def test_registry_env_values_are_yaml_strings_the_registry_reads_back_exactly(tmp_path):
    """The registry parses each environment override as YAML: ' #' would start a comment,
    a leading quote or * would mean something. Each value is a double-quoted string."""
    awkward = "Cache $pw \"q\" \\ 'x' #ünï *&!: 0123"
    settings = dict(
        S3,
        _registry_server_http_secret="*starts-with-a-star #and-a-comment",
        registry_server_storage_s3_accesskey="'quoted' key",
        registry_server_storage_s3_secretkey=awkward,
        registry_server_redis_host="cache",
        registry_server_redis_password=awkward,
    )
    dest = render_template(ROLE, "registry.env.j2", tmp_path / "registry.env", settings)
    read = {}
    for line in dest.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.split("=", 1)
        # compose's reading of the two quotings compose_env_file writes.
        if value.startswith("'"):
            value = value[1:-1]
        else:
            value = value[1:-1].replace("$$", "$")
            value = value.replace('\\"', '"').replace("\\\\", "\\")
        read[name] = yaml.safe_load(value)
    assert read == {
        "REGISTRY_HTTP_SECRET": "*starts-with-a-star #and-a-comment",
        "REGISTRY_STORAGE_S3_ACCESSKEY": "'quoted' key",
        "REGISTRY_STORAGE_S3_SECRETKEY": awkward,
        "REGISTRY_REDIS_PASSWORD": awkward,
    }
