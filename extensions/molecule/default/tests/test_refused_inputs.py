"""A refusal changes nothing on a real host.

The table of refused inputs runs as fast tests of the roles' preflight
(tests/functional/test_refused_inputs.py). These few of its cases, one per role and one
for each role the registry's preflight asks (PKI, token service, maintenance), run here
through site.yml against the scenario's real hosts: every case is an inventory alias of
the registry or client-a carrying the case's variables, all side by side, one playbook run
per role (Ansible ends a run once every host of a play failed). Each must fail, change
nothing, and say what is wrong; afterwards the hosts' files and the registry container are
exactly as they were.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from registry_helpers import SERVER_STATE, container_name, converge, line_independent

pytestmark = line_independent  # the roles' checks are the same on both lines

USERS = [{"name": "pusher", "password": "molecule-pusher-pw"}]
CLIENT = {"registry_client_username": "pusher", "registry_client_password": "molecule-pusher-pw"}

# (case, group the alias joins, its variables, what the message must say)
CASES = [
    (
        "port-zero",
        "server",
        {"registry_server_port": 0},
        "registry_server_port (0) is outside 1-65535",
    ),
    (
        "acme-single-label",
        "server",
        {"registry_server_tls_mode": "acme", "registry_pki_acme_domains": ["registry"]},
        "registry_pki_acme_domains [0] (registry) has a single label",
    ),
    (
        "token-realm-not-in-certificate",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_realm": "https://tokens.example.com:5443/token",
        },
        "names the host tokens.example.com, but the token service serves it with the certificate",
    ),
    (
        # Read by the host's own systemd-analyze: before it was, the timer's units were
        # written and then failed to load.
        "gc-calendar-systemd-cannot-read",
        "server",
        {"registry_maintenance_gc_timer_on_calendar": "every tuesday-ish"},
        "registry_maintenance_gc_timer_on_calendar ('every tuesday-ish') is not a calendar "
        "this host's systemd can read",
    ),
    (
        "moved-variable",
        "server",
        {"registry_server_acl": []},
        "registry_server_acl is now registry_token_acl",
    ),
    (
        "client-host-url",
        "client",
        dict(CLIENT, registry_client_registry_host="https://registry:5000"),
        "registry_client_registry_host ('https://registry:5000') is neither a DNS name",
    ),
    ("web-port-zero", "web", {"registry_web_port": 0}, "registry_web_port (0) is outside 1-65535"),
]
GROUPS = {"server": "registry_servers", "client": "registry_clients", "web": "registry_web"}
TARGETS = {"server": "registry", "client": "client-a", "web": "registry"}
CLIENT_STATE = (
    "cat /etc/docker/daemon.json 2>/dev/null; ls -la /etc/docker/certs.d; "
    "sha256sum /etc/docker/certs.d/*/* /root/.docker/config.json 2>/dev/null; "
    "ls /usr/local/share/ca-certificates"
)


def alias(case):
    kind = next(entry[1] for entry in CASES if entry[0] == case)
    return "refused-%s-%s" % (kind, case)


@pytest.fixture(scope="module")
def refused_run(server, client_a, tmp_path_factory):
    """The one playbook run of every case, with the hosts' state before and after."""
    inventory = {group: {"hosts": {}} for group in GROUPS.values()}
    for case, kind, variables, _message in CASES:
        inventory[GROUPS[kind]]["hosts"][alias(case)] = dict(
            variables,
            ansible_host=container_name(TARGETS[kind]),
            ansible_connection="community.docker.docker",
            ansible_user="root",
        )
    extra = tmp_path_factory.mktemp("refused") / "refused.yml"
    extra.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    before = (server.check_output(SERVER_STATE), client_a.check_output(CLIENT_STATE))

    def run(kind):
        return converge(
            "--limit",
            "refused-%s-*" % kind,
            "--forks",
            "20",
            inventories=[extra],
            env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
            output="stdout",
        )

    with ThreadPoolExecutor(max_workers=len(GROUPS)) as pool:
        runs = list(pool.map(run, GROUPS))
    result = {"plays": [], "stats": {}}
    for _rc, output in runs:
        parsed = json.loads(output)
        result["plays"] += parsed["plays"]
        result["stats"].update(parsed["stats"])
    after = (server.check_output(SERVER_STATE), client_a.check_output(CLIENT_STATE))
    web_absent = not server.file("/opt/registry-web").exists
    return {
        "rcs": [rc for rc, _output in runs],
        "result": result,
        "before": before,
        "after": after,
        "web_absent": web_absent,
    }


def failure_message(result, host):
    for play in result["plays"]:
        for task in play["tasks"]:
            answer = task["hosts"].get(host)
            if answer and answer.get("failed"):
                return answer.get("msg", "")
    return None


@pytest.mark.parametrize(("case", "kind", "variables", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_the_variable_named(refused_run, case, kind, variables, message):
    stats = refused_run["result"]["stats"][alias(case)]
    assert stats["failures"] == 1, stats
    assert stats["changed"] == 0, stats
    failed = failure_message(refused_run["result"], alias(case))
    assert failed is not None
    assert message in failed, failed


def test_refused_runs_left_the_hosts_as_they_were(refused_run):
    assert all(rc != 0 for rc in refused_run["rcs"])
    assert refused_run["after"] == refused_run["before"]
    assert refused_run["web_absent"]
