"""The token service's limits on logins (roles/registry_token/files/token_limits.py):
the bound on password checks, trusted proxies, the Docker bridges, the failure window.
How a login meets them is in test_registry_token.py."""

from __future__ import annotations

import ipaddress
import threading

from ansible_collections.privreg.registry.tests.unit.roles.role_files import load_role_file

token_limits = load_role_file("registry_token", "token_limits")


def test_a_waiting_password_check_gets_the_place_that_comes_free():
    bound = token_limits.Bound()
    assert bound.enter(1, 0)
    threading.Timer(0.05, bound.leave).start()
    assert bound.enter(1, 2)
    assert not bound.enter(1, 0.01)


def test_containers_on_this_hosts_docker_bridges_are_trusted_only_when_asked():
    def bridges():
        return [ipaddress.ip_network("172.18.0.0/16")]

    local = token_limits.TrustedProxies([], True, bridges=bridges)
    assert "172.18.0.3" in local
    assert "172.19.0.3" not in local
    assert "not-an-address" not in local
    assert "172.18.0.3" not in token_limits.TrustedProxies([], False, bridges=bridges)
    assert "10.1.2.3" in token_limits.TrustedProxies(["10.0.0.0/8"], False, bridges=bridges)


def test_the_docker_bridges_come_from_the_routing_table(tmp_path):
    routes = tmp_path / "route"
    routes.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "br-0123456789ab\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "br0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert token_limits.docker_bridge_networks(str(routes)) == [
        ipaddress.ip_network("172.17.0.0/16"),
        ipaddress.ip_network("172.18.0.0/16"),
    ]
    assert token_limits.docker_bridge_networks(str(tmp_path / "missing")) == []


def test_the_limiter_forgets_failures_after_the_window():
    now = [1000.0]
    limiter = token_limits.FailureLimiter(2, 60, clock=lambda: now[0])
    limiter.failed(("a", "x"))
    limiter.failed(("a", "x"))
    assert limiter.blocked(("a", "x"))
    now[0] += 61
    assert not limiter.blocked(("a", "x"))
