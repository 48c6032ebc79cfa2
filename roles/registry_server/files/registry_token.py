# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The registry's token service (docker token authentication), a WSGI app for gunicorn.

GET  /token?service=S&scope=repository:NAME:pull,push  (HTTP basic credentials or none)
POST /token  grant_type=password&username=&password=&service=&scope=  (OAuth2 form, containerd)

Answers a JWT signed with the service's key (ES256, its certificate in the x5c header),
granting what the access rules (token_acl, beside this file) allow. Users come from the
htpasswd file the role keeps, rules from a JSON file it renders; both are re-read when they
change, so user and rule changes need no restart. Passwords and tokens are never logged.
Failed logins are limited per account and source address.

Configuration: the JSON file named by PRIVREG_TOKEN_CONFIG.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
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


class _Reloading:
    """A file's parsed content, parsed again when its modification time or size changes."""

    def __init__(self, path, parse):
        self._path, self._parse = path, parse
        self._stamp, self._value = None, None
        self._lock = threading.Lock()

    def get(self):
        stat = os.stat(self._path)
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._value, self._stamp = self._parse(self._path), stamp
            return self._value


class FailureLimiter:
    """At most ``limit`` failed logins per (account, address) within ``window`` seconds."""

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


def _load_acl(path):
    with open(path, encoding="utf-8") as handle:
        acl = json.load(handle)
    problems = token_acl.acl_problems(acl.get("rules"), acl.get("groups", {}))
    if problems:
        raise ValueError("invalid access rules in %s: %s" % (path, "; ".join(problems)))
    return acl


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


class TokenService:
    """Settings, signing key, users and rules are read again when their files change, so
    neither a rotation nor a user or rule change needs a restart (or drops a request)."""

    def __init__(self, config_path, clock=time.time):
        self._clock = clock
        self._signer = _Reloading(config_path, _Signer)
        config = self._signer.get().config
        self._users = _Reloading(config["htpasswd"], HtpasswdFile)
        self._acl = _Reloading(config["acl"], _load_acl)
        self._limiter = FailureLimiter(int(config["failure_limit"]), int(config["failure_window"]))
        # Checked for an unknown user, so a wrong name costs what a wrong password costs.
        self._dummy_hash = bcrypt.using(rounds=int(config["bcrypt_cost"])).hash(
            secrets.token_hex(16)
        )

    @property
    def limiter(self):
        """The failed-login limiter, with the limit and window service.json sets now."""
        config = self._signer.get().config
        self._limiter.limit = int(config["failure_limit"])
        self._limiter.window = int(config["failure_window"])
        return self._limiter

    @property
    def service(self):
        return self._signer.get().service

    @property
    def lifetime(self):
        return self._signer.get().lifetime

    def authenticate(self, username, password):
        """True when the htpasswd file holds the user with this password (bcrypt check)."""
        users = self._users.get()
        try:
            if users.get_hash(username) is None:
                bcrypt.verify(password, self._dummy_hash)
                return False
            return bool(users.check_password(username, password))
        except ValueError:  # e.g. a password beyond bcrypt's 72 bytes
            return False

    def access(self, account, scopes):
        acl = self._acl.get()
        granted = []
        for scope in scopes:
            parsed = token_acl.parse_scope(scope)
            if parsed is None:
                continue
            resource_type, name, requested = parsed
            actions = token_acl.grant(
                acl["rules"], acl.get("groups", {}), account, resource_type, name, requested
            )
            granted.append({"type": resource_type, "name": name, "actions": actions})
        return granted

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


def make_app(service):
    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/token":
            return _respond(start_response, "404 Not Found", {"errors": [{"code": "NOT_FOUND"}]})
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            credentials = _basic_credentials(environ)
            scopes = query.get("scope", [])
            requested_service = query.get("service", [service.service])[0]
        elif method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qs(
                environ["wsgi.input"].read(min(length, 65536)).decode("utf-8", "replace")
            )
            if form.get("grant_type", [""])[0] != "password":
                return _respond(
                    start_response, "400 Bad Request", {"error": "unsupported_grant_type"}
                )
            credentials = (form.get("username", [""])[0], form.get("password", [""])[0])
            scopes = " ".join(form.get("scope", [])).split()
            requested_service = form.get("service", [service.service])[0]
        else:
            return _respond(
                start_response, "405 Method Not Allowed", {"errors": [{"code": "UNSUPPORTED"}]}
            )
        if requested_service != service.service:
            return _respond(
                start_response,
                "400 Bad Request",
                {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]},
            )
        account = token_acl.ANONYMOUS
        if credentials is not None:
            username, password = credentials
            key = (username, environ.get("REMOTE_ADDR", ""))
            if service.limiter.blocked(key):
                return _respond(
                    start_response,
                    "429 Too Many Requests",
                    {
                        "errors": [
                            {
                                "code": "TOOMANYREQUESTS",
                                "message": "too many failed logins; try again later",
                            }
                        ]
                    },
                    [("Retry-After", str(service.limiter.window))],
                )
            if (
                not username
                or username == token_acl.ANONYMOUS
                or not service.authenticate(username, password)
            ):
                service.limiter.failed(key)
                return _respond(
                    start_response,
                    "401 Unauthorized",
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    [("WWW-Authenticate", 'Basic realm="registry token service"')],
                )
            account = username
        issued = service.token(account, service.access(account, scopes))
        body = {
            "token": issued,
            "access_token": issued,
            "expires_in": service.lifetime,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return _respond(start_response, "200 OK", body)

    return app


def application_from_environment():
    return make_app(TokenService(os.environ["PRIVREG_TOKEN_CONFIG"]))


if __name__ != "__main__" and os.environ.get("PRIVREG_TOKEN_CONFIG"):
    application = application_from_environment()
