# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The registry's token service (docker token authentication), a WSGI app for gunicorn.

GET  /token?service=S&scope=repository:NAME:pull,push  (HTTP basic credentials or none)
POST /token  grant_type=password&username=&password=&service=&scope=  (OAuth2 form, containerd)
GET  /token/catalog  (HTTP basic credentials or none): the registry's catalog, only the
     repositories the caller may pull (the web UI's repository list; the registry's own
     catalog is all or nothing). A signed-in user sees the names of what they may pull;
     a caller without credentials sees nothing unless the rules give ``anonymous`` the
     catalog right. The catalog is read once at a time and kept CATALOG_CACHE_SECONDS, and
     not read at all for a caller no rule lets pull anything.

Answers a JWT signed with the service's key (ES256, its certificate in the x5c header),
granting what the access rules (token_acl, beside this file) allow. Users come from the
htpasswd file the role keeps and, when ldap.json is configured, from the company directory
(token_ldap; a local account wins a name clash, a directory that cannot answer gives 503);
rules from a JSON file the role renders. Robots (robots.json: a name with the robot prefix,
a bcrypt hash, an expiry) get only their own rules, until their expiry. All are re-read
when they change, so user, robot, rule and directory changes need no restart. Passwords
and tokens are never logged.
Failed logins are limited per account and source address, and per source address over all
accounts; password checks run a few at a time. The source address is the peer's, or the
X-Real-IP a trusted proxy (the web front) names.

Configuration: the JSON file named by PRIVREG_TOKEN_CONFIG.
"""

from __future__ import annotations

import base64
import binascii
import collections
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from passlib.apache import HtpasswdFile
from passlib.hash import bcrypt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import token_acl  # noqa: E402  (shipped beside this file)
import token_ldap  # noqa: E402  (shipped beside this file)
from token_limits import (  # noqa: E402  (shipped beside this file)
    Bound,
    FailureLimiter,
    TrustedProxies,
    client_address,
)


def _stamp(path):
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class _Reloading:
    """A file's parsed content, parsed again when its modification time, size or inode
    changes, or those of the files it names (``depends``: the value's other files)."""

    def __init__(self, path, parse, depends=None):
        self._path, self._parse = path, parse
        self._depends = depends or (lambda _value: [])
        self._stamp, self._value = None, None
        self._lock = threading.Lock()

    def _stamps(self, value):
        paths = [self._path] + (list(self._depends(value)) if value is not None else [])
        return tuple((path, _stamp(path)) for path in paths)

    def get(self):
        with self._lock:
            stamp = self._stamps(self._value)
            if stamp == self._stamp:
                return self._value
            before = stamp
            try:
                # Kept only when no file it read changed while it was read (the same stamps
                # before and after, over the files the new value names); otherwise read
                # again. One read unless a rotation names other files, or a file is changing.
                for _attempt in range(5):
                    value = self._parse(self._path)
                    after = self._stamps(value)
                    if after == before:
                        break
                    before = after
                else:
                    before = None  # still changing: read again at the next call
            except FileNotFoundError:
                if self._value is None:
                    raise
                # A file the value names is gone (a revoked key's, removed before
                # service.json names the next key): keep what was read until it is whole.
                return self._value
            self._value, self._stamp = value, before
            return self._value


# What one login is checked against (TokenService.login_rules).
LoginRules = collections.namedtuple(
    "LoginRules", "limiter address_limiter trusted_proxies password_checks"
)


class RegistryUnavailable(Exception):
    """The registry did not answer the catalog request as it should."""


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` that checks the certificate for ``hostname`` (the registry's
    certificate names the host, not the loopback address the service reaches it on)."""

    def __init__(self, address, port, hostname, context, timeout=10):
        super().__init__(hostname, port, context=context, timeout=timeout)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


_NEXT_PAGE = re.compile(r'<(/v2/_catalog\?[^>]*)>\s*;\s*rel="?next"?')
# How long a read of the registry's catalog serves /token/catalog (a failed read: a shorter
# while), and the most names read: the UI asks on every visit, and on S3 every page of the
# catalog is billed list requests.
CATALOG_CACHE_SECONDS = 10
CATALOG_FAILURE_CACHE_SECONDS = 2
CATALOG_MAX_NAMES = 100000
# How long a login waits for a password check to come free before the 429.
PASSWORD_CHECK_WAIT_SECONDS = 1.0


def _address_failure_limit(config):
    """Failed logins per address over all accounts: address_failure_limit, at least the
    per-account limit (an older service.json without it: ten times that)."""
    limit = int(config["failure_limit"])
    return max(limit, int(config.get("address_failure_limit", 10 * limit)))


def _load_acl(path):
    with open(path, encoding="utf-8") as handle:
        acl = json.load(handle)
    problems = token_acl.acl_problems(acl.get("rules"), acl.get("groups", {}))
    if problems:
        raise ValueError("invalid access rules in %s: %s" % (path, "; ".join(problems)))
    return acl


def _load_robots(path):
    """robots.json: robot account -> {hash, expires (seconds since the epoch, or None),
    access (the robot's own rules)}."""
    with open(path, encoding="utf-8") as handle:
        robots = json.load(handle)["robots"]
    for account, robot in robots.items():
        problems = token_acl.acl_problems(robot["access"], {})
        if problems:
            raise ValueError("invalid rules of %s in %s: %s" % (account, path, "; ".join(problems)))
    return robots


def _load_directory(path):
    """The directory of ldap.json (its settings and the service account's password)."""
    with open(path, encoding="utf-8") as handle:
        settings = json.load(handle)
    return token_ldap.Directory(settings, settings.pop("bind_password"))


# A right password: the user's groups from the directory (empty for a local account), and
# for a robot its own rules (None: the access rules of people).
Login = collections.namedtuple("Login", "groups rules")
PERSON = Login(frozenset(), None)


class _Signer:
    """The settings of service.json and the key it names (what a rotation changes)."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        self.config = config
        self.issuer, self.service = config["issuer"], config["service"]
        self.lifetime = int(config["lifetime"])
        with open(config["signing_key"], "rb") as handle:
            self.key = serialization.load_pem_private_key(handle.read(), password=None)
        with open(config["signing_certificate"], "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read())
        self.x5c = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]


# The subject of the tokens the service signs for itself (the registry only logs it).
_SERVICE_ACCOUNT = "privreg-token-service"


class TokenService:
    """Settings, signing key, users and rules are read again when their files change, so
    neither a rotation nor a user or rule change needs a restart (or drops a request)."""

    def __init__(self, config_path, clock=time.time, monotonic=time.monotonic):
        self._clock, self._monotonic = clock, monotonic
        # (registry settings, read at, names or the RegistryUnavailable it met)
        self._catalog = (None, 0.0, None)
        self._catalog_lock = threading.Lock()
        # A key replaced under its id (service.json unchanged) signs from the next token on.
        self._signer = _Reloading(
            config_path,
            _Signer,
            lambda signer: [signer.config["signing_key"], signer.config["signing_certificate"]],
        )
        config = self._signer.get().config
        self._users = _Reloading(config["htpasswd"], HtpasswdFile)
        self._acl = _Reloading(config["acl"], _load_acl)
        window = int(config["failure_window"])
        self._limiter = FailureLimiter(int(config["failure_limit"]), window)
        self._address_limiter = FailureLimiter(_address_failure_limit(config), window)
        self._password_checks = Bound()
        self._trusted = (None, TrustedProxies())  # (settings, proxies)
        self._directory = (None, None)  # (ldap.json's path, its _Reloading)
        self._robots = (None, None)  # (robots.json's path, its _Reloading)
        self._dummy = (None, None)  # (cost, hash), made on first use

    def login_rules(self):
        """What a login is checked against, from one read of service.json: the failed-login
        limiters (per account and address, per address) with the limits and window it sets
        now, the trusted proxies, and how many password checks may run at once."""
        config = self._signer.get().config
        window = int(config["failure_window"])
        self._limiter.limit, self._limiter.window = int(config["failure_limit"]), window
        self._address_limiter.limit = _address_failure_limit(config)
        self._address_limiter.window = window
        proxies = (
            tuple(config.get("trusted_proxies", ())),
            bool(config.get("trust_local_containers", False)),
        )
        if self._trusted[0] != proxies:
            self._trusted = (proxies, TrustedProxies(*proxies))
        return LoginRules(
            self._limiter,
            self._address_limiter,
            self._trusted[1],
            int(config.get("password_checks", 4)),
        )

    def check_password(self, username, password, limit):
        """authenticate() at most `limit` at a time: None when no place came free within
        PASSWORD_CHECK_WAIT_SECONDS. A bcrypt check takes a core for some 50 ms, so an
        unbounded stream of them would hold every thread and starve the token requests."""
        if not self._password_checks.enter(limit, PASSWORD_CHECK_WAIT_SECONDS):
            return None
        try:
            return self.authenticate(username, password)
        finally:
            self._password_checks.leave()

    def dummy_hash(self):
        """A hash of a random password at the cost service.json sets now (users' hashes are
        made at that cost): checked for an unknown user, so a wrong name costs what a wrong
        password costs."""
        cost = int(self._signer.get().config["bcrypt_cost"])
        if self._dummy[0] != cost:
            self._dummy = (cost, bcrypt.using(rounds=cost).hash(secrets.token_hex(16)))
        return self._dummy[1]

    @property
    def service(self):
        return self._signer.get().service

    @property
    def lifetime(self):
        return self._signer.get().lifetime

    def directory(self):
        """The company directory service.json names (ldap.json), or None."""
        path = self._signer.get().config.get("ldap")
        if not path:
            return None
        if self._directory[0] != path:
            self._directory = (path, _Reloading(path, _load_directory))
        try:
            return self._directory[1].get()
        except (OSError, ValueError, KeyError, TypeError) as error:
            # Settings being replaced or removed (a converge between its steps), or broken:
            # the directory's people wait (503); never a 500 or a wrong-password 401.
            raise token_ldap.DirectoryUnavailable(
                "the directory settings %s cannot be read: %s" % (path, type(error).__name__)
            ) from error

    def robots(self):
        """The robots robots.json holds now ({} when service.json names none, or the file
        cannot be read: then no robot signs in, and the journal says why)."""
        path = self._signer.get().config.get("robots")
        if not path:
            return {}
        if self._robots[0] != path:
            self._robots = (path, _Reloading(path, _load_robots))
        try:
            return self._robots[1].get()
        except (OSError, ValueError, KeyError, TypeError) as error:
            print("robots: %s cannot be read: %s" % (path, type(error).__name__), file=sys.stderr)
            return {}

    def _check_hash(self, password, hashed):
        try:
            return bcrypt.verify(password, hashed)
        except ValueError:  # e.g. a password beyond bcrypt's 72 bytes
            return False

    def _robot_login(self, account, password):
        """A robot's Login (its own rules) for its right secret before its expiry."""
        robot = self.robots().get(account)
        if robot is None:
            self._check_hash(password, self.dummy_hash())
            return False
        if not self._check_hash(password, robot["hash"]):
            return False
        expires = robot.get("expires")
        if expires is not None and self._clock() >= expires:
            # Only a caller with the right secret learns it expired (from the journal).
            print(
                "login: robot %s expired at %s"
                % (account, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))),
                file=sys.stderr,
                flush=True,
            )
            return False
        return Login(frozenset(), robot["access"])

    def authenticate(self, username, password):
        """A Login when the password is right, else False. A name with the robot prefix is
        a robot's and nobody else's. A local account (the htpasswd file, bcrypt) wins a name
        clash with the directory: robots and break-glass admins keep working whatever the
        directory holds or does. Other names are the directory's;
        token_ldap.DirectoryUnavailable when it cannot tell."""
        prefix = self._signer.get().config.get("robot_prefix")
        if prefix and username.startswith(prefix):
            return self._robot_login(username, password)
        users = self._users.get()
        try:
            if users.get_hash(username) is not None:
                return PERSON if users.check_password(username, password) else False
        except ValueError:  # e.g. a password beyond bcrypt's 72 bytes
            return False
        directory = self.directory()
        if directory is None:
            self._check_hash(password, self.dummy_hash())
            return False
        groups = directory.authenticate(username, password)
        return False if groups is None else Login(groups, None)

    def _rules(self, account, login):
        """The rules that decide for the caller and the groups they name: a robot's own
        rules, or the access rules with ``account`` in its groups from the directory."""
        if login.rules is not None:
            return login.rules, {}
        directory_groups = login.groups
        acl = self._acl.get()
        groups = dict(acl.get("groups", {}))
        for group in directory_groups:
            groups[group] = list(groups.get(group, ())) + [account]
        return acl["rules"], groups

    def access(self, account, scopes, login=PERSON):
        rules, groups = self._rules(account, login)
        granted = []
        for scope in scopes:
            parsed = token_acl.parse_scope(scope)
            if parsed is None:
                continue
            resource_type, name, requested = parsed
            actions = token_acl.grant(rules, groups, account, resource_type, name, requested)
            granted.append({"type": resource_type, "name": name, "actions": actions})
        return granted

    def may_pull(self, account, names, login=PERSON):
        """The names among ``names`` that ``account`` may pull."""
        rules, groups = self._rules(account, login)
        return [
            name
            for name in names
            if "pull" in token_acl.grant(rules, groups, account, "repository", name, ["pull"])
        ]

    def may_list(self, account, login=PERSON):
        """Whether /token/catalog can show ``account`` any name: a signed-in user whom some
        rule lets pull; a caller without credentials only with the catalog right."""
        rules, groups = self._rules(account, login)
        if account == token_acl.ANONYMOUS:
            granted = token_acl.grant(rules, groups, account, "registry", "catalog", ["*"])
            if not granted:
                return False
        return token_acl.may_pull_somewhere(rules, groups, account)

    def catalog_names(self):
        """The registry's catalog as last read, read again when older than
        CATALOG_CACHE_SECONDS; one read at a time, the callers meanwhile wait for it."""
        registry = json.dumps(self._signer.get().config["registry"], sort_keys=True)
        with self._catalog_lock:
            settings, read_at, names = self._catalog
            age = self._monotonic() - read_at
            failed = isinstance(names, RegistryUnavailable)
            if settings == registry and age < (
                CATALOG_FAILURE_CACHE_SECONDS if failed else CATALOG_CACHE_SECONDS
            ):
                if failed:
                    raise names
                return names
            try:
                names = self.registry_catalog()
            except RegistryUnavailable as error:
                self._catalog = (registry, self._monotonic(), error)
                raise
            self._catalog = (registry, self._monotonic(), names)
            return names

    def registry_catalog(self):
        """Every repository name, read from the registry with a catalog token of our own."""
        registry = self._signer.get().config["registry"]
        access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
        headers = {"Authorization": "Bearer " + self.token(_SERVICE_ACCOUNT, access)}
        context = ssl.create_default_context(cafile=registry.get("ca") or None)
        names, path = [], "/v2/_catalog?n=1000"
        while path:
            connection = _PinnedHTTPSConnection(
                registry["address"], int(registry["port"]), registry["name"], context
            )
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise RegistryUnavailable(str(error)) from error
            finally:
                connection.close()
            if response.status != 200:
                raise RegistryUnavailable("the registry answered %d" % response.status)
            names.extend(json.loads(body).get("repositories") or [])
            found = _NEXT_PAGE.search(response.getheader("Link") or "")
            path = found.group(1) if found else None
            if path and len(names) >= CATALOG_MAX_NAMES:
                print(
                    "catalog: more than %d repositories; listing the first" % CATALOG_MAX_NAMES,
                    file=sys.stderr,
                    flush=True,
                )
                break
        return names

    def token(self, account, access):
        signer = self._signer.get()
        now = int(self._clock())
        claims = {
            "iss": signer.issuer,
            "sub": "" if account == token_acl.ANONYMOUS else account,
            "aud": signer.service,
            "exp": now + signer.lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": access,
        }
        return jwt.encode(claims, signer.key, algorithm="ES256", headers={"x5c": signer.x5c})


def _basic_credentials(environ):
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    username, _separator, password = decoded.partition(":")
    return username, password


def _respond(start_response, status, body, extra=()):
    payload = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        ("Cache-Control", "no-store"),
    ]
    start_response(status, headers + list(extra))
    return [payload]


def _error(start_response, status, code, message, extra=()):
    return _respond(start_response, status, {"errors": [{"code": code, "message": message}]}, extra)


def _caller(service, environ, credentials, start_response):
    """(account, its Login, None) for valid or no credentials, else (None, None, the
    refusal to answer). A directory that cannot answer gets 503, not a failure.

    Failures count per (account, client address) and per client address: the client's own
    failures, never another client's, lock an account out for it (behind the front, the
    address is the one the front saw)."""
    if credentials is None:
        return token_acl.ANONYMOUS, PERSON, None
    username, password = credentials
    rules = service.login_rules()
    address = client_address(environ, rules.trusted_proxies)
    key = (username, address)
    if rules.limiter.blocked(key) or rules.address_limiter.blocked(address):
        refusal = _error(
            start_response,
            "429 Too Many Requests",
            "TOOMANYREQUESTS",
            "too many failed logins; try again later",
            [("Retry-After", str(rules.limiter.window))],
        )
        return None, None, refusal
    checked = False
    if username and username != token_acl.ANONYMOUS:
        try:
            checked = service.check_password(username, password, rules.password_checks)
        except token_ldap.DirectoryUnavailable as error:
            # The reason goes to the journal; the user's name and password do not.
            print("directory: %s" % error, file=sys.stderr, flush=True)
            refusal = _error(
                start_response,
                "503 Service Unavailable",
                "UNAVAILABLE",
                "the directory cannot check this account now; local accounts still work",
                [("Retry-After", "30")],
            )
            return None, None, refusal
    if checked is None:
        refusal = _error(
            start_response,
            "429 Too Many Requests",
            "TOOMANYREQUESTS",
            "too many logins at once; try again in a second",
            [("Retry-After", "1")],
        )
        return None, None, refusal
    if not checked:
        rules.limiter.failed(key)
        rules.address_limiter.failed(address)
        refusal = _error(
            start_response,
            "401 Unauthorized",
            "UNAUTHORIZED",
            "authentication required",
            [("WWW-Authenticate", 'Basic realm="registry token service"')],
        )
        return None, None, refusal
    return username, checked, None


def _token_request(service, environ):
    """What a token request asks: (credentials, scopes, service); None for a POST that is
    not the OAuth password grant."""
    method = environ.get("REQUEST_METHOD")
    if method == "GET":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        return (
            _basic_credentials(environ),
            query.get("scope", []),
            query.get("service", [service.service])[0],
        )
    length = int(environ.get("CONTENT_LENGTH") or 0)
    form = parse_qs(environ["wsgi.input"].read(min(length, 65536)).decode("utf-8", "replace"))
    if form.get("grant_type", [""])[0] != "password":
        return None
    return (
        (form.get("username", [""])[0], form.get("password", [""])[0]),
        " ".join(form.get("scope", [])).split(),
        form.get("service", [service.service])[0],
    )


def make_app(service):
    def issue(environ, start_response):
        asked = _token_request(service, environ)
        if asked is None:
            return _respond(start_response, "400 Bad Request", {"error": "unsupported_grant_type"})
        credentials, scopes, requested_service = asked
        if requested_service != service.service:
            return _error(start_response, "400 Bad Request", "UNSUPPORTED", "unknown service")
        account, login, refusal = _caller(service, environ, credentials, start_response)
        if refusal is not None:
            return refusal
        issued = service.token(account, service.access(account, scopes, login))
        body = {
            "token": issued,
            "access_token": issued,
            "expires_in": service.lifetime,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return _respond(start_response, "200 OK", body)

    def catalog(environ, start_response):
        credentials = _basic_credentials(environ)
        account, login, refusal = _caller(service, environ, credentials, start_response)
        if refusal is not None:
            return refusal
        if not service.may_list(account, login):
            return _respond(start_response, "200 OK", {"repositories": []})
        try:
            names = service.catalog_names()
        except RegistryUnavailable as error:
            print("catalog: %s" % error, file=sys.stderr, flush=True)
            return _error(
                start_response,
                "502 Bad Gateway",
                "UNAVAILABLE",
                "the registry's catalog is unavailable",
            )
        return _respond(
            start_response, "200 OK", {"repositories": service.may_pull(account, names, login)}
        )

    def app(environ, start_response):
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == "/token" and method in ("GET", "POST"):
            return issue(environ, start_response)
        if path == "/token/catalog" and method == "GET":
            return catalog(environ, start_response)
        if path in ("/token", "/token/catalog"):
            return _error(
                start_response, "405 Method Not Allowed", "UNSUPPORTED", "method not allowed"
            )
        return _error(start_response, "404 Not Found", "NOT_FOUND", "not found")

    return app


def application_from_environment():
    return make_app(TokenService(os.environ["PRIVREG_TOKEN_CONFIG"]))


if __name__ != "__main__" and os.environ.get("PRIVREG_TOKEN_CONFIG"):
    application = application_from_environment()
