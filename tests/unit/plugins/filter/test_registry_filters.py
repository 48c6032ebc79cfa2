"""The filters the roles validate and derive settings with, on their own."""

from __future__ import annotations

import pytest

from ansible_collections.privreg.registry.plugins.filter import registry as filters


@pytest.mark.parametrize(
    ("users", "fragment"),
    [
        ([{"name": "#admin", "password": "x"}], "starts with '#'"),
        ([{"name": "a\u2028b", "password": "x"}], "control characters"),
        ([{"name": "tab\tname", "password": "x"}], "control characters"),
        ([{"name": " alice", "password": "x"}], "surrounding spaces"),
        ([{"name": "a:b", "password": "x"}], "contains ':'"),
        ([{"name": "alice"}], "(alice) has an empty password"),
        ([{"name": "alice", "password": "x"}, {"name": "alice", "password": "y"}], "appears twice"),
        ([{"name": "alice", "password": "x", "state": "gone"}], "has state 'gone'"),
        (["alice"], "is not a mapping"),
        ("alice", "must be a list"),
    ],
)
def test_user_problems(users, fragment):
    problems = filters.registry_user_problems(users)
    assert any(fragment in p for p in problems), problems
    assert not any("password': " in p for p in problems)


def test_user_problems_accepts_good_users():
    users = [{"name": "ci", "password": "p"}, {"name": "old", "state": "absent"}]
    assert filters.registry_user_problems(users) == []


def test_storage_parameters_drop_empty_optional_s3_values():
    params = filters.storage_parameters(
        "s3",
        s3={
            "bucket": "b",
            "region": "r",
            "regionendpoint": "",
            "secure": "false",
            "skipverify": False,
            "v4auth": True,
            "chunksize": 0,
            "rootdirectory": "",
            "encrypt": False,
            "keyid": "",
            "storageclass": "STANDARD",
            "forcepathstyle": False,
        },
        options={"extra": 1},
    )
    assert params == {
        "bucket": "b",
        "region": "r",
        "storageclass": "STANDARD",
        "secure": False,
        "skipverify": False,
        "v4auth": True,
        "encrypt": False,
        "extra": 1,
    }


def test_storage_parameters_keep_set_s3_values():
    params = filters.storage_parameters(
        "s3", s3={"regionendpoint": "http://s:1", "chunksize": "5242880", "forcepathstyle": True}
    )
    assert params["regionendpoint"] == "http://s:1"
    assert params["chunksize"] == 5242880
    assert params["forcepathstyle"] is True


def test_storage_parameters_of_other_drivers():
    assert filters.storage_parameters("filesystem", filesystem={"rootdirectory": "/r"}) == {
        "rootdirectory": "/r"
    }
    assert filters.storage_parameters("azure", options={"container": "c"}) == {"container": "c"}


def test_storage_secret_env():
    env = filters.storage_secret_env({"accountkey": "k"}, "azure")
    assert env == {"REGISTRY_STORAGE_AZURE_ACCOUNTKEY": "k"}
    env = filters.storage_secret_env({}, "s3", "AK", "SK")
    assert env == {"REGISTRY_STORAGE_S3_ACCESSKEY": "AK", "REGISTRY_STORAGE_S3_SECRETKEY": "SK"}
    assert filters.storage_secret_env({}, "s3") == {}


def test_host_ipv4_addresses_leave_out_container_interfaces():
    facts = {
        "interfaces": ["lo", "eth0", "docker0", "veth12ab", "br-0a1b2c"],
        "lo": {"ipv4": {"address": "127.0.0.1"}},
        "eth0": {"ipv4": {"address": "10.0.0.5"}, "ipv4_secondaries": [{"address": "10.0.0.6"}]},
        "docker0": {"ipv4": {"address": "172.17.0.1"}},
        "veth12ab": {},
        "br_0a1b2c": {"ipv4": {"address": "172.18.0.1"}},
    }
    exclude = r"^(lo|docker\d+|br-[0-9a-f]+|veth.*)$"
    assert filters.host_ipv4_addresses(facts, exclude) == ["10.0.0.5", "10.0.0.6"]
    with pytest.raises(filters.AnsibleFilterError):
        filters.host_ipv4_addresses({}, exclude)


def test_name_constraints_cover_the_registry_names_and_networks():
    constraints = filters.name_constraints(
        [
            "registry.example.com",
            "registry",
            "web.example.com",
            "*.apps.example.com",
            "203.0.113.5",
            "10.0.0.7",
        ],
        ["10.0.0.0/24", "10.0.0.0/16"],
    )
    assert constraints == ["example.com", "registry", "10.0.0.0/16", "203.0.113.5/32"]


def test_host_ipv4_networks():
    facts = {
        "interfaces": ["lo", "eth0", "docker0"],
        "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
        "eth0": {"ipv4": {"address": "10.0.0.5", "netmask": "255.255.255.0"}},
        "docker0": {"ipv4": {"address": "172.17.0.1", "netmask": "255.255.0.0"}},
    }
    assert filters.host_ipv4_networks(facts, r"^(lo|docker\d+)$") == ["10.0.0.0/24"]


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("::", "[::]"),
        ("fd00::5", "[fd00::5]"),
        ("0.0.0.0", "0.0.0.0"),
        ("10.0.0.5", "10.0.0.5"),
        ("registry.example.com", "registry.example.com"),
    ],
)
def test_url_host_brackets_ipv6_addresses_only(address, host):
    assert filters.url_host(address) == host
