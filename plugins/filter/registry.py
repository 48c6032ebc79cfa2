# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the roles use to validate input and derive settings.

Logic the modules share (user validation) lives in module_utils and is only called here,
so the role's preflight and the module on the host apply the same rules.
Documentation: the YAML file of each filter beside this one.
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.privreg.registry.plugins.module_utils import validation
from ansible_collections.privreg.registry.plugins.module_utils.htpasswd import user_problems
from ansible_collections.privreg.registry.plugins.module_utils.robots import (
    prefix_problem,
    robot_problems,
)
from ansible_collections.privreg.registry.plugins.module_utils.token_acl import acl_problems

# S3 parameters written only when set: an empty value would override the driver's default.
_S3_OPTIONAL = ("regionendpoint", "rootdirectory", "keyid")
_S3_ALWAYS = ("bucket", "region", "storageclass")
_S3_BOOLEANS = ("secure", "skipverify", "v4auth", "encrypt")


def _s3_parameters(s3):
    params = {key: s3.get(key, "") for key in _S3_ALWAYS}
    params.update({key: boolean(s3.get(key, False), strict=False) for key in _S3_BOOLEANS})
    params.update({key: s3[key] for key in _S3_OPTIONAL if s3.get(key)})
    chunksize = int(s3.get("chunksize") or 0)
    if chunksize > 0:
        params["chunksize"] = chunksize
    # Registry 2.x knows no forcepathstyle: written only when asked for.
    if boolean(s3.get("forcepathstyle", False), strict=False):
        params["forcepathstyle"] = True
    return params


def storage_parameters(driver, filesystem=None, s3=None, options=None):
    """config.yml's parameters of the one storage driver, without secrets."""
    if driver == "filesystem":
        params = dict(filesystem or {})
    elif driver == "s3":
        params = _s3_parameters(s3 or {})
    else:
        params = {}
    params.update(options or {})
    return params


def storage_secret_env(secrets, driver, s3_accesskey="", s3_secretkey=""):
    """The driver's secrets as REGISTRY_STORAGE_<DRIVER>_<NAME> environment variables."""
    prefix = "REGISTRY_STORAGE_%s_" % str(driver).upper()
    env = {prefix + str(name).upper(): value for name, value in (secrets or {}).items()}
    if driver == "s3" and s3_accesskey:
        env["REGISTRY_STORAGE_S3_ACCESSKEY"] = s3_accesskey
        env["REGISTRY_STORAGE_S3_SECRETKEY"] = s3_secretkey
    return env


def compose_env_file(env):
    """An environment file that Docker compose reads back as exactly these values.

    compose expands `$` and strips ` #...` from unquoted values; single-quoted values are
    taken literally, so that is how every value is written. A value with a `'` is written
    double-quoted, with `\\`, `"` and `$` escaped. Line breaks cannot be carried at all:
    preflight refuses them (the `secret` kind of check_settings)."""
    lines = []
    for name, value in sorted((env or {}).items()):
        if validation.identifier(name):
            raise AnsibleFilterError("compose_env_file: %r is not a variable name" % name)
        text = "" if value is None else str(value)
        if validation.secret(text):
            raise AnsibleFilterError(
                "compose_env_file: the value of %s has a line break or control character" % name
            )
        if "'" not in text:
            lines.append("%s='%s'" % (name, text))
        else:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
            lines.append('%s="%s"' % (name, escaped))
    return "".join(line + "\n" for line in lines)


def _interface_addresses(facts, exclude, name):
    """The IPv4 address facts (primary and secondary) of every interface of a host whose
    name does not match `exclude`."""
    if not isinstance(facts, dict) or "interfaces" not in facts:
        raise AnsibleFilterError("%s needs the host's facts (ansible_facts)" % name)
    pattern = re.compile(exclude)
    for interface in facts["interfaces"]:
        if pattern.search(interface):
            continue
        data = facts.get(interface.replace("-", "_")) or {}
        if isinstance(data.get("ipv4"), dict):
            yield data["ipv4"]
        yield from data.get("ipv4_secondaries") or []


def host_ipv4_addresses(facts, exclude=r"^lo$"):
    """IPv4 addresses (primary and secondary) of a host's interfaces, from its facts,
    leaving out the interfaces whose names match `exclude`."""
    addresses = _interface_addresses(facts, exclude, "host_ipv4_addresses")
    return sorted({address["address"] for address in addresses if address.get("address")})


def host_ipv4_networks(facts, exclude=r"^lo$"):
    """The IPv4 networks (CIDR) of a host's interfaces, from its facts, leaving out the
    interfaces whose names match `exclude`."""
    networks = set()
    for address in _interface_addresses(facts, exclude, "host_ipv4_networks"):
        if address.get("address") and address.get("netmask"):
            network = "%s/%s" % (address["address"], address["netmask"])
            networks.add(str(ipaddress.ip_network(network, strict=False)))
    return sorted(networks)


def name_constraints(names, networks=None):
    """Permitted subtrees for a registry's CA: the domain of each name (its parent: the CA
    of registry.example.com may vouch for *.example.com; a single-label name only for
    itself), each IP address given, and the networks given."""
    permitted = set(networks or [])
    for raw in names or []:
        name = str(raw).strip().lower().rstrip(".")
        if not name:
            continue
        try:
            permitted.add(str(ipaddress.ip_network(name, strict=False)))
            continue
        except ValueError:
            pass
        labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
        permitted.add(".".join(labels[1:]) if len(labels) > 1 else labels[0])
    # A network inside another one adds nothing.
    nets = sorted(
        (ipaddress.ip_network(p) for p in permitted if _is_network(p)),
        key=lambda n: (n.version, n.prefixlen),
    )
    kept_networks = []
    for net in nets:
        if not any(net.version == k.version and net.subnet_of(k) for k in kept_networks):
            kept_networks.append(net)
    domains = sorted(p for p in permitted if not _is_network(p))
    kept_domains = [d for d in domains if not any(d.endswith("." + o) for o in domains)]
    return kept_domains + [str(n) for n in kept_networks]


def _is_network(value):
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except ValueError:
        return False


def url_host(address):
    """An address as the host part before ":port": an IPv6 address in brackets."""
    address = str(address)
    try:
        return "[%s]" % address if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address  # a host name or an IPv4 address


def registry_user_problems(users, variable="registry_server_users"):
    """Sentences naming each user entry the registry could not use (never a password)."""
    if not isinstance(users, list):
        return ["%s must be a list of {name, password} entries" % variable]
    return user_problems(users, where=variable)


def registry_acl_problems(rules, groups):
    """The problems of token access rules and groups (module_utils.token_acl)."""
    return acl_problems(rules, groups)


def registry_robot_problems(robots, prefix="robot$", variable="registry_token_robots"):
    """The problems of robot accounts and their prefix (module_utils.robots); no secret."""
    problems = robot_problems(robots, variable)
    problem = prefix_problem(prefix)
    if problem:
        problems.append("registry_token_robot_prefix (%r) %s" % (prefix, problem))
    return problems


class FilterModule:
    def filters(self):
        return {
            "acl_problems": registry_acl_problems,
            "compose_env_file": compose_env_file,
            "host_ipv4_addresses": host_ipv4_addresses,
            "host_ipv4_networks": host_ipv4_networks,
            "robot_problems": registry_robot_problems,
            "name_constraints": name_constraints,
            "storage_parameters": storage_parameters,
            "storage_secret_env": storage_secret_env,
            "url_host": url_host,
            "user_problems": registry_user_problems,
        }
