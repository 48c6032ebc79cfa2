# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sign-in against the company directory (shipped beside registry_token.py), with ldap3
(Debian's python3-ldap3).

Search, then bind: the service account finds the one entry the user filter matches, then
the user's own bind checks the password. The user's groups are the groups whose member
attribute names the user's entry (a search under the group base), or the user's memberOf
values; only the groups of the mapping count, under the names the access rules use.
Nested groups do not count. Over LDAPS, or LDAP with StartTLS, the server's certificate
checked against the CA file given (else the system's); plain LDAP only when the settings
say so. Passwords are never logged.
"""

from __future__ import annotations

import ssl

try:
    import ldap3
    from ldap3.core import exceptions as ldap_errors
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import parse_dn
except ImportError:  # python3-ldap3 is installed only where a directory is configured
    ldap3 = None


class DirectoryUnavailable(Exception):
    """The directory could not answer (down, a TLS failure, the service account refused):
    the caller gets 503, not a 401 that looks like a wrong password."""


def normal_dn(dn):
    """A DN as compared here: attribute names and values in lower case, no spaces around
    the separators (the directory may spell a DN another way than the settings)."""
    try:
        return ",".join(
            "%s=%s" % (name.lower(), value.lower())
            for name, value, _separator in parse_dn(dn, strip=True)
        )
    except ldap_errors.LDAPInvalidDnError:
        return dn.strip().lower()


class Directory:
    """settings: the ``ldap`` part of service.json; bind_password: the service account's."""

    def __init__(self, settings, bind_password):
        if ldap3 is None:
            raise DirectoryUnavailable("python3-ldap3 is not installed")
        self.settings, self._bind_password = settings, bind_password
        # Whole seconds: ldap3 packs the receive timeout as an integer (struct.pack).
        timeout = max(1, int(settings.get("timeout", 5)))
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=settings.get("ca_file") or None,
        )
        self._servers = [
            ldap3.Server(
                url,
                use_ssl=url.lower().startswith("ldaps://"),
                tls=tls,
                connect_timeout=timeout,
                get_info=ldap3.NONE,
            )
            for url in settings["urls"]
        ]
        self._start_tls = bool(settings.get("start_tls"))
        self._timeout = timeout
        self._groups = {normal_dn(dn): name for dn, name in settings.get("groups", {}).items()}

    def _bind(self, server, user, password):
        """A connection to server bound as user, or None when the server refused the
        credentials. ldap3's errors (the server not answering, TLS) pass through."""
        connection = ldap3.Connection(
            server,
            user=user,
            password=password,
            receive_timeout=self._timeout,
            raise_exceptions=False,
            read_only=True,
        )
        connection.open()
        if self._start_tls and not connection.start_tls():
            connection.unbind()
            raise DirectoryUnavailable("StartTLS failed on %s: %s" % (server, connection.result))
        if not connection.bind():
            connection.unbind()
            return None
        return connection

    def _service_connection(self):
        """(server, connection) of the first server that answers, bound as the service
        account: each server once, in order (ldap3's own pool sleeps 10 s between rounds)."""
        reasons = []
        for server in self._servers:
            try:
                connection = self._bind(server, self.settings["bind_dn"], self._bind_password)
            except ldap_errors.LDAPException as error:
                reasons.append("%s: %s: %s" % (server, type(error).__name__, error))
                continue
            if connection is None:
                raise DirectoryUnavailable("%s refused the service account's bind" % server)
            return server, connection
        raise DirectoryUnavailable("no directory server answered (%s)" % "; ".join(reasons))

    def authenticate(self, username, password):
        """The user's mapped groups (a frozenset) when the directory knows the user with
        this password, else None. Raises DirectoryUnavailable when it cannot tell."""
        # An empty password makes a simple bind unauthenticated, which succeeds: refuse it.
        if not username or not password:
            return None
        server, service = self._service_connection()
        try:
            entry = self._find_user(service, username)
            if entry is None:
                return None
            user_dn, member_of = entry
            # The user's own bind, on the server that found them.
            user = self._bind(server, user_dn, password)
            if user is None:
                return None
            user.unbind()
            return self._mapped(self._group_dns(service, user_dn, member_of))
        except ldap_errors.LDAPException as error:
            raise DirectoryUnavailable("%s: %s" % (type(error).__name__, error)) from error
        finally:
            service.unbind()

    def _search(self, connection, base, search_filter, attributes, size_limit=0):
        """The entries found; more than size_limit is not an error (the caller counts)."""
        connection.search(
            base,
            search_filter,
            search_scope=ldap3.SUBTREE,
            attributes=attributes,
            size_limit=size_limit,
            time_limit=self._timeout,
        )
        if connection.result.get("result") not in (0, 4):  # success, size limit exceeded
            raise DirectoryUnavailable("search under %s failed: %s" % (base, connection.result))
        return connection.entries

    def _find_user(self, connection, username):
        """(DN, memberOf values) of the one entry the user filter matches, else None (no
        entry, or more than one: a name must name one person)."""
        search_filter = self.settings["user_filter"].replace(
            "{username}", escape_filter_chars(username)
        )
        attributes = ["memberOf"] if self.settings.get("group_mode") == "member_of" else []
        entries = self._search(
            connection, self.settings["base_dn"], search_filter, attributes, size_limit=2
        )
        if len(entries) != 1:
            return None
        entry = entries[0]
        member_of = entry.memberOf.values if "memberOf" in entry else []
        return entry.entry_dn, list(member_of)

    def _group_dns(self, connection, user_dn, member_of):
        if self.settings.get("group_mode") == "member_of":
            return member_of
        search_filter = self.settings["group_filter"].replace("{dn}", escape_filter_chars(user_dn))
        base = self.settings.get("group_base_dn") or self.settings["base_dn"]
        return [entry.entry_dn for entry in self._search(connection, base, search_filter, [])]

    def _mapped(self, group_dns):
        normal = (normal_dn(dn) for dn in group_dns)
        return frozenset(self._groups[dn] for dn in normal if dn in self._groups)
