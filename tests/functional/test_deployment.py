"""The deployment's shape (playbooks/vars/deployment.yml): what the roles' defaults take
from the inventory's groups. Each expectation follows from the inventory the test writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).with_name("deployment.yml")


def deployment(tmp_path, groups):
    """registry_deployment as each host sees it, for an inventory of these groups."""
    inventory = {
        "all": {
            "children": groups,
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
    )
    result = subprocess.run(
        ["ansible-playbook", "-i", str(path), str(PLAYBOOK)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    task = json.loads(result.stdout)["plays"][0]["tasks"][0]
    return {host: answer["registry_deployment"] for host, answer in task["hosts"].items()}


def test_one_registry_is_its_own_ca_host_and_the_clients_endpoint(tmp_path):
    seen = deployment(
        tmp_path,
        {
            "registry_servers": {"hosts": {"registry": {"registry_server_port": 443}}},
            "registry_clients": {"hosts": {"client": {}}},
        },
    )
    for view in seen.values():
        assert view["registry_host"] == "registry"
        assert view["ca_host"] == "registry"
        assert view["endpoint"] == "registry"
        assert view["ports"] == {"registry": 443}
        assert view["balancers"] == []
        assert view["cache"] == {"host": "", "port": 6379, "password": ""}
        assert view["registries"]["registry"]["tls_mode"] == "selfsigned"
        assert view["registries"]["registry"]["auth_mode"] == "htpasswd"


def test_replicas_behind_balancers_with_a_cache(tmp_path):
    replicas = ["registry-1", "registry-2"]
    seen = deployment(
        tmp_path,
        {
            "registry_servers": {
                "hosts": {name: {} for name in replicas},
                "vars": {
                    "registry_server_replicas": replicas,
                    "registry_server_auth_mode": "token",
                    "registry_token_port": 6443,
                    "registry_server_storage_delete_enabled": True,
                },
            },
            "registry_lb": {
                "hosts": {
                    "lb-1": {"registry_lb_server_names": ["registry.example.com"]},
                    "lb-2": {},
                }
            },
            "registry_cache": {
                "hosts": {"cache": {"registry_cache_port": 6380, "registry_cache_password": "pw"}}
            },
            "registry_web": {
                "hosts": {"front": {"registry_web_server_names": ["web.example.com"]}}
            },
            "registry_clients": {"hosts": {"client": {}}},
        },
    )
    view = seen["client"]
    # Clients go to the first balancer, on the registry's port by default.
    assert view["endpoint"] == "lb-1"
    assert view["ports"] == {"registry-1": 5000, "registry-2": 5000, "lb-1": 5000, "lb-2": 5000}
    # The first replica keeps the CA, for both replicas.
    assert {name: view["registries"][name]["ca_host"] for name in replicas} == {
        "registry-1": "registry-1",
        "registry-2": "registry-1",
    }
    assert view["ca_host"] == "registry-1"
    assert view["registries"]["registry-2"]["auth_mode"] == "token"
    assert view["registries"]["registry-2"]["token_port"] == 6443
    assert view["registries"]["registry-2"]["delete_enabled"] is True
    assert view["cache"] == {"host": "cache", "port": 6380, "password": "pw"}
    assert view["balancers"] == ["lb-1", "lb-2"]
    # The CA vouches for every front's and balancer's name.
    assert sorted(view["names"]) == sorted(
        ["front", "web.example.com", "lb-1", "lb-2", "registry.example.com"]
    )
    # Every host sees the same deployment.
    assert all(other == view for other in seen.values())


def test_two_registries_each_keep_their_own_ca(tmp_path):
    seen = deployment(
        tmp_path,
        {
            "registry_servers": {
                "hosts": {
                    "registry": {"registry_server_tls_client_auth": True},
                    "registry-http": {"registry_server_tls_mode": "none"},
                }
            },
        },
    )
    view = seen["registry"]
    assert view["registry_host"] == "registry"
    assert view["registries"]["registry"]["ca_host"] == "registry"
    assert view["registries"]["registry"]["tls_client_auth"] is True
    assert view["registries"]["registry-http"]["ca_host"] == "registry-http"
    assert view["registries"]["registry-http"]["tls_mode"] == "none"
