# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The token service's limits on logins (shipped beside registry_token.py): who may name
the real client (trusted proxies, the host's Docker bridges), the client's address, failed
logins per key within a window, and a bound on password checks running at once."""

from __future__ import annotations

import ipaddress
import re
import threading
import time

_DOCKER_BRIDGE = re.compile(r"^(docker0|br-[0-9a-f]{12})$")


def docker_bridge_networks(routes="/proc/net/route"):
    """The IPv4 networks of this host's Docker bridges (docker0, br-*), from its routing
    table: only containers on this host have addresses there."""
    networks = []
    try:
        with open(routes, encoding="ascii") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) < 8 or not _DOCKER_BRIDGE.match(fields[0]):
                    continue
                if fields[1] == "00000000":  # a default route through a bridge
                    continue
                # Little-endian hexadecimal, as the kernel prints them.
                destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
                mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
                networks.append(ipaddress.IPv4Network("%s/%s" % (destination, mask), strict=False))
    except (OSError, ValueError):
        return []
    return networks


class TrustedProxies:
    """Peers whose X-Real-IP header names the real client: the configured addresses and
    networks, and with ``local_containers`` any container on this host's Docker bridges
    (a web front beside the service reaches it from one; read again every 30 s, as compose
    networks come and go)."""

    def __init__(
        self,
        networks=(),
        local_containers=False,
        bridges=docker_bridge_networks,
        monotonic=time.monotonic,
    ):
        self.networks = [ipaddress.ip_network(network, strict=False) for network in networks]
        self.local_containers = local_containers
        self._bridges, self._monotonic = bridges, monotonic
        self._local, self._read_at = [], None
        self._lock = threading.Lock()

    def _local_networks(self):
        with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= 30:
                self._local, self._read_at = self._bridges(), now
            return self._local

    def __contains__(self, address):
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        if any(peer in network for network in self.networks):
            return True
        return self.local_containers and any(peer in net for net in self._local_networks())


def client_address(environ, trusted):
    """The caller's address: the peer's, or the X-Real-IP header when the peer is a trusted
    proxy (the front sets it to its own client's address). Anyone else's header is ignored:
    a client cannot choose the address its failures count against."""
    peer = environ.get("REMOTE_ADDR", "")
    if peer not in trusted:
        return peer
    try:
        return str(ipaddress.ip_address(environ.get("HTTP_X_REAL_IP", "").strip()))
    except ValueError:
        return peer


class FailureLimiter:
    """At most ``limit`` failed logins per key (an account and address, or an address)
    within ``window`` seconds."""

    def __init__(self, limit, window, clock=time.monotonic):
        self.limit, self.window, self._clock = limit, window, clock
        self._failures = {}
        self._lock = threading.Lock()

    def _recent(self, key, now):
        return [moment for moment in self._failures.get(key, ()) if now - moment < self.window]

    def blocked(self, key):
        with self._lock:
            recent = self._recent(key, self._clock())
            self._failures[key] = recent
            return len(recent) >= self.limit

    def failed(self, key):
        with self._lock:
            now = self._clock()
            self._failures[key] = self._recent(key, now) + [now]
            if len(self._failures) > 100000:  # bounded memory under a spray of names
                self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}


class Bound:
    """At most ``limit`` callers inside at once (the limit read at each entry); a caller
    waits up to ``timeout`` seconds for a place, then is turned away."""

    def __init__(self, monotonic=time.monotonic):
        self._inside, self._monotonic = 0, monotonic
        self._condition = threading.Condition()

    def enter(self, limit, timeout):
        with self._condition:
            deadline = self._monotonic() + timeout
            while self._inside >= limit:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            self._inside += 1
            return True

    def leave(self):
        with self._condition:
            self._inside -= 1
            self._condition.notify()
