# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The grammar and ranges of the values the roles write into files, commands and URLs.

Each check returns None when the value is fine, else the reason and the fix, as words to
put after the variable's name. Pure functions: the roles' preflight calls them through the
`check_settings` action, modules may call them directly.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
from urllib.parse import urlsplit

from ansible_collections.privreg.registry.plugins.module_utils.retention import rule_problems
from ansible_collections.privreg.registry.plugins.module_utils.token_acl import GROUP_NAME

# Directories a service's base directory must never be: the role would change their
# owner and mode (a base_dir of /tmp would lose its 1777), or they are virtual/volatile.
SYSTEM_DIRS = frozenset(
    (
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/lib/docker",
        "/var/log",
        "/var/run",
        "/var/tmp",
        "/var/spool",
    )
)
# Trees whose contents vanish or are not real files.
VOLATILE_TREES = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/run", "/boot")

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTAINER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# docker's reference grammar, simplified to what a pull accepts: [host[:port]/]path[:tag][@digest]
_REFERENCE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def _control(text):
    """Characters that would end or break a line in a file (or hide in one): control and
    format characters, and Unicode's own line and paragraph separators."""
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def port(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return "is not a port number; use 1-65535"
    if isinstance(value, bool) or not 1 <= number <= 65535:
        return "is outside 1-65535 (0 would publish on a random port); use 1-65535"
    return None


def integer(value, low, high):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return "is not a number; use %d-%d" % (low, high)
    if isinstance(value, bool) or not low <= number <= high:
        return "is outside %d-%d" % (low, high)
    return None


# What a directory of the roles may be spelled with (issue 33: `$(...)`, `;`, `%` reached
# shell scripts and ExecStart= lines).
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/-]*")


def data_dir(value):
    """A directory the role owns and chmods: absolute, normal, not a system directory."""
    if not isinstance(value, str) or not value:
        return "is empty; give an absolute directory such as /opt/registry"
    if _control(value) or any(c.isspace() for c in value) or ":" in value:
        return "has spaces, ':' or control characters; use a plain absolute path"
    if not value.startswith("/"):
        return "is not absolute; use an absolute directory such as /opt/registry"
    if not _PLAIN_PATH.fullmatch(value):
        return (
            "has characters other than letters, digits, '.', '_', '-' and '/': it reaches "
            "root's scripts and systemd unit lines, where $, % and ; act; use a plain path "
            "such as /opt/registry"
        )
    normal = posixpath.normpath(value)
    if normal != (value.rstrip("/") or "/") or "//" in value:
        return "is not in normal form (%s); write it as %s" % (value, normal)
    if normal in SYSTEM_DIRS:
        return (
            "is a system directory, whose owner and mode the role would change; use a "
            "directory of its own such as /opt/registry"
        )
    if any(normal == tree or normal.startswith(tree + "/") for tree in VOLATILE_TREES):
        return "lies in %s, which does not keep files; use one such as /opt/registry" % (
            next(t for t in VOLATILE_TREES if normal == t or normal.startswith(t + "/"))
        )
    return None


def absolute_path(value):
    if not isinstance(value, str) or not value.startswith("/") or _control(value):
        return "is not an absolute path"
    return None


def hostname(value, wildcard=False):
    """A DNS name (RFC 1123 labels) or an IP address; with wildcard, *.name too."""
    if not isinstance(value, str) or not value:
        return "is empty; give a DNS name or an IP address"
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        allowed = " (a wildcard only as the whole first label: *.example.com)" if wildcard else ""
        return "is neither a DNS name (letters, digits, '-' and '.')%s nor an IP address" % allowed
    return None


def dns_name(value):
    """A DNS name that a public CA can vouch for: at least two labels, no IP address."""
    problem = hostname(value)
    if problem:
        return problem
    try:
        ipaddress.ip_address(value)
        return "is an IP address; an ACME certificate needs DNS names"
    except ValueError:
        pass
    if "." not in value.rstrip("."):
        return (
            "has a single label; an ACME CA issues only for names in a domain "
            "(registry.example.com)"
        )
    return None


def dns_names(values):
    if not isinstance(values, (list, tuple)) or not values:
        return "is empty; give the DNS names the certificate must cover"
    return _each(dns_name)(values)


def email(value):
    """Empty, or one address of the form local@domain."""
    if value in ("", None):
        return None
    if not isinstance(value, str) or not _EMAIL.match(value):
        return "is not an e-mail address (name@example.com), or leave it empty"
    return None


def hostname_or_network(value):
    """A DNS domain or an IP network (name constraints of a CA)."""
    if isinstance(value, str):
        try:
            ipaddress.ip_network(value, strict=False)
            return None
        except ValueError:
            pass
    return hostname(value)


def ip_address(value):
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return "is not an IP address"
    return None


def ip_network(value):
    """An IP address or network (CIDR): 192.0.2.7, 10.0.0.0/8, 2001:db8::/32."""
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return "is not an IP address or network (192.0.2.7, 10.0.0.0/8)"
    return None


def loopback(value):
    problem = ip_address(value)
    if problem:
        return problem
    if not ipaddress.ip_address(str(value)).is_loopback:
        return "is not a loopback address"
    return None


def duration(value):
    if not isinstance(value, str) or not _DURATION.match(value):
        return "is not a duration like 10s, 30m, 24h or 168h"
    return None


def secret(value):
    """A secret that goes into an environment file: one line, no NUL."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "is not a string"
    if _control(value):
        return (
            "contains a line break or another control character, which an environment "
            "file cannot carry (it would add variables); remove it"
        )
    return None


def text_line(value):
    if not isinstance(value, str) or _control(value):
        return "contains a line break or another control character; keep it to one line"
    return None


def environment_value(value):
    """A container environment value: one line of text (numbers and booleans as written)."""
    if isinstance(value, (dict, list)):
        return "is not a single value"
    return text_line(value if isinstance(value, str) else str(value))


def bucket(value):
    if not isinstance(value, str) or not _BUCKET.match(value) or ".." in value:
        return "is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
    return None


def region(value):
    if not isinstance(value, str) or not _REGION.match(value):
        return "is not a region name (lowercase letters, digits and '-', e.g. us-east-1)"
    return None


def url(value, schemes=("http", "https")):
    if not isinstance(value, str) or _control(value) or any(c.isspace() for c in value):
        return "is not a URL"
    parts = urlsplit(value)
    if (
        parts.scheme not in schemes
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
    ):
        return "is not a %s URL without credentials, query or fragment" % " or ".join(schemes)
    try:
        number = parts.port
    except ValueError:
        return "has a port outside 1-65535"
    if number is not None and port(number):
        return "has a port outside 1-65535"
    if hostname(parts.hostname):
        return "does not name a valid host"
    return None


# restic's repository locations: a local path, or a backend prefix and its location.
_RESTIC_BACKENDS = ("sftp:", "s3:", "rest:", "b2:", "azure:", "gs:", "swift:", "rclone:")
_RESTIC_SUBSET = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?%|[0-9]+/[0-9]+|[0-9]+[KMGT]?)$")


def restic_repository(value):
    """A restic repository: an absolute path, or BACKEND:LOCATION; no credentials in it
    (they go to the environment, which no command line or log shows)."""
    unusable = not isinstance(value, str) or not value or _control(value)
    if unusable or any(c.isspace() for c in value):
        return "is not a restic repository (an absolute path, or sftp:, s3:, ... and a location)"
    if value.startswith("/"):
        return None
    backend = next((prefix for prefix in _RESTIC_BACKENDS if value.startswith(prefix)), None)
    if backend is None or len(value) == len(backend):
        backends = ", ".join(_RESTIC_BACKENDS)
        return "is neither an absolute path nor %s followed by a location" % backends
    location = urlsplit(value[len(backend) :])
    if location.scheme in ("http", "https") and (location.username or location.password):
        return "has credentials in it; give them in registry_maintenance_backup_environment"
    return None


def restic_subset(value):
    """What restic check --read-data-subset takes (5%, 1/10, 500M), or empty for none."""
    if value in ("", None):
        return None
    if not isinstance(value, str) or not _RESTIC_SUBSET.match(value):
        return "is not a share of the data restic can read (5%, 1/10, 500M)"
    return None


def image_reference(value):
    if not isinstance(value, str) or not _REFERENCE.match(value):
        return "is not an image reference like registry:3.1.1 or registry.example.com/team/app:1"
    return None


def container_name(value):
    if not isinstance(value, str) or not _CONTAINER.match(value):
        return "is not a container name (letters, digits, '_', '.' and '-')"
    return None


def file_name(value):
    """A name that becomes part of a file name: no path separators, no leading dot."""
    if not isinstance(value, str) or not _FILE_NAME.match(value):
        return "is not a simple name (1-64 letters, digits, '_', '.', '-'; not starting with '.')"
    return None


def compose_project(value):
    if not isinstance(value, str) or not _PROJECT.match(value):
        return "is not a compose project name (lowercase letters, digits, '_' and '-')"
    return None


def identifier(value):
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        return "is not a parameter name (letters, digits and '_')"
    return None


def retention_rules(value):
    if not isinstance(value, list):
        return "must be a list of rules such as {repositories: 'ci/*', keep_last: 10}"
    problems = rule_problems(value, variable="")
    return "; ".join(problems) if problems else None


# An LDAP distinguished name (RFC 4514, loosely): attribute=value pairs joined by commas;
# a value may carry a special character escaped with a backslash.
_DN_PART = re.compile(r"\s*[A-Za-z][A-Za-z0-9-]*\s*=\s*(?:[^,+\"\\<>;=]|\\[0-9A-Fa-f]{2}|\\[ -~])+")


def ldap_dn(value, empty=False):
    if empty and value in ("", None):
        return None
    if not isinstance(value, str) or _control(value) or not value.strip():
        return "is not a distinguished name"
    # Split at commas a backslash does not escape.
    parts = re.split(r"(?<!\\),", value)
    if not all(_DN_PART.fullmatch(part) for part in parts):
        return (
            "is not a distinguished name: attribute=value pairs joined by commas, "
            "e.g. ou=people,dc=example,dc=com"
        )
    return None


def ldap_filter(value, placeholder):
    """An LDAP search filter with the placeholder the service fills in (escaped)."""
    example = "(uid={username})" if placeholder == "username" else "(member={dn})"
    if not isinstance(value, str) or _control(value):
        return "is not an LDAP filter on one line; e.g. %s" % example
    depth = 0
    for character in value:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth < 0:
            break
    if not (value.startswith("(") and value.endswith(")")) or depth != 0:
        return "is not an LDAP filter in balanced parentheses; e.g. %s" % example
    others = set(re.findall(r"\{([^}]*)\}", value)) - {placeholder}
    if "{%s}" % placeholder not in value or others:
        return "must name {%s} and no other placeholder; e.g. %s" % (placeholder, example)
    return None


def ldap_group_map(value):
    """Directory group DN -> the name of a group of the access rules."""
    if not isinstance(value, dict):
        return "is not a mapping of group DN to group name"
    for dn, name in value.items():
        problem = ldap_dn(dn)
        if problem:
            return "has the key %r, which %s" % (dn, problem)
        if not isinstance(name, str) or not GROUP_NAME.match(name):
            return "[%s] (%r) is not a group name (letters, digits, '.', '_', '-'; at most 64)" % (
                dn,
                name,
            )
    return None


def _each(check):
    def run(values, **options):
        if not isinstance(values, (list, tuple)):
            return "is not a list"
        for index, value in enumerate(values):
            problem = check(value, **options)
            if problem:
                return "[%d] (%s) %s" % (index, value, problem)
        return None

    return run


def _mapping(key_check, value_check):
    def run(values):
        if not isinstance(values, dict):
            return "is not a mapping"
        for key, value in values.items():
            problem = key_check(key)
            if problem:
                return "has the key %r, which %s" % (key, problem)
            problem = value_check(value)
            if problem:
                return "[%s] %s" % (key, problem)
        return None

    return run


# kind -> (check, whether the value may be shown in the message)
CHECKS = {
    "port": (port, True),
    "integer": (integer, True),
    "data_dir": (data_dir, True),
    "absolute_path": (absolute_path, True),
    "hostname": (hostname, True),
    "hostnames": (_each(hostname), True),
    "hostnames_or_networks": (_each(hostname_or_network), True),
    "dns_names": (dns_names, True),
    "email": (email, True),
    "ip_address": (ip_address, True),
    "ip_addresses": (_each(ip_address), True),
    "ip_networks": (_each(ip_network), True),
    "loopback": (loopback, True),
    "duration": (duration, True),
    "secret": (secret, False),
    "secrets": (_mapping(identifier, secret), False),
    "text_line": (text_line, True),
    # One line here; whether systemd can read it is asked of the managed host
    # (action/check_settings: `systemd-analyze calendar`), whose systemd decides.
    "systemd_calendar": (text_line, True),
    "systemd_timespan": (text_line, True),
    "bucket": (bucket, True),
    "region": (region, True),
    "url": (url, True),
    "image_reference": (image_reference, True),
    "restic_repository": (restic_repository, True),
    "restic_subset": (restic_subset, True),
    "container_name": (container_name, True),
    "file_name": (file_name, True),
    "file_names": (_each(file_name), True),
    "compose_project": (compose_project, True),
    "extra_hosts": (_mapping(hostname, ip_address), True),
    "identifiers": (_mapping(identifier, lambda value: None), True),
    "environment": (_mapping(identifier, environment_value), True),
    "retention_rules": (retention_rules, False),
    "ldap_urls": (_each(lambda value: url(value, schemes=("ldap", "ldaps"))), True),
    "ldap_dn": (ldap_dn, True),
    "ldap_filter": (ldap_filter, True),
    "ldap_group_map": (ldap_group_map, True),
}


def setting_problems(checks):
    """One sentence per setting that fails its check: the variable, what is wrong, the fix.

    `checks` lists {name, value, kind, [hint], [options]}; secrets never appear in the
    sentences."""
    problems = []
    for check in checks:
        kind = check["kind"]
        if kind not in CHECKS:
            raise ValueError("unknown kind of setting %r for %s" % (kind, check.get("name")))
        function, shown = CHECKS[kind]
        problem = function(check.get("value"), **(check.get("options") or {}))
        if problem:
            value = " (%r)" % (check.get("value"),) if shown and not problem.startswith("[") else ""
            sentence = "%s%s %s" % (check["name"], value, problem)
            if check.get("hint"):
                sentence += "; " + check["hint"]
            problems.append(sentence)
    return problems
