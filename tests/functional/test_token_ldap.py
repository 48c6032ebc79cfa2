"""The token service's directory sign-in (roles/registry_token/files/token_ldap.py) against
a real OpenLDAP: the lab's slapd image (tests/lab/slapd-setup.sh), LDAPS and StartTLS with
its own CA, people and groupOfNames groups. The people and passwords below are the ones that
script puts in the directory."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "roles/registry_token/files/token_ldap.py"
_spec = importlib.util.spec_from_file_location("token_ldap_under_test", MODULE)
token_ldap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(token_ldap)

IMAGE = "privreg-test/slapd:trixie"
CONTAINER = "privreg-it-slapd"
LDAPS_PORT, LDAP_PORT = 16361, 13891
SUFFIX = "dc=privreg,dc=test"
SEARCH_PASSWORD = "search pw: ldap $ecret"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            CONTAINER,
            "-p",
            "127.0.0.1:%d:636" % LDAPS_PORT,
            "-p",
            "127.0.0.1:%d:389" % LDAP_PORT,
            IMAGE,
            "slapd",
            "-d",
            "0",
            "-h",
            "ldap:/// ldaps:/// ldapi:///",  # ldapi: root's changes (_ldapmodify)
            "-u",
            "openldap",
            "-g",
            "openldap",
        ],
        check=True,
        capture_output=True,
    )
    path = tmp_path_factory.mktemp("ldap") / "ca.crt"
    subprocess.run(["docker", "cp", CONTAINER + ":/srv/ldap-ca.crt", str(path)], check=True)
    for _attempt in range(50):
        probe = subprocess.run(
            [
                "docker",
                "exec",
                CONTAINER,
                "ldapsearch",
                "-x",
                "-H",
                "ldap://127.0.0.1",
                "-b",
                "",
                "-s",
                "base",
            ],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            break
        time.sleep(0.2)
    yield str(path)
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)


def settings(ca, **changes):
    base = {
        "urls": ["ldaps://127.0.0.1:%d" % LDAPS_PORT],
        "bind_dn": "cn=registry-search," + SUFFIX,
        "base_dn": "ou=people," + SUFFIX,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
        "group_mode": "search",
        "group_base_dn": "ou=groups," + SUFFIX,
        "group_filter": "(&(objectClass=groupOfNames)(member={dn}))",
        # Spelled as an operator might: other case, a space after a comma.
        "groups": {
            "CN=registry-admins, OU=groups," + SUFFIX: "admins",
            "cn=registry-readers,ou=groups," + SUFFIX: "readers",
        },
        "ca_file": ca,
        "timeout": 3,
    }
    base.update(changes)
    return base


def directory(ca, password=SEARCH_PASSWORD, **changes):
    return token_ldap.Directory(settings(ca, **changes), password)


def test_a_person_signs_in_with_the_groups_of_the_mapping(ca_file):
    ldap = directory(ca_file)
    assert ldap.authenticate("dave", "dave-ldap-pw") == {"admins"}
    assert ldap.authenticate("erin", "erin-ldap-pw") == {"readers"}


def test_a_wrong_password_an_unknown_name_and_an_empty_password_are_refused(ca_file):
    ldap = directory(ca_file)
    assert ldap.authenticate("dave", "erin-ldap-pw") is None
    assert ldap.authenticate("nobody", "dave-ldap-pw") is None
    # An empty password would make an unauthenticated bind, which the directory accepts.
    assert ldap.authenticate("dave", "") is None


def _ldapmodify(ldif):
    """A change made as the directory's root (ldapi in the container)."""
    subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            CONTAINER,
            "ldapmodify",
            "-Q",
            "-Y",
            "EXTERNAL",
            "-H",
            "ldapi:///",
        ],
        input=ldif,
        text=True,
        check=True,
        capture_output=True,
    )


def test_a_disabled_person_cannot_sign_in(ca_file):
    # frank is disabled as OpenLDAP disables an account (ppolicy, locked for good); his
    # password is right, as the control shows: unlocked, he signs in with his group.
    ldap = directory(ca_file)
    assert ldap.authenticate("frank", "frank-ldap-pw") is None
    frank = "dn: uid=frank,ou=people,%s\nchangetype: modify\n" % SUFFIX
    _ldapmodify(frank + "delete: pwdAccountLockedTime\n")
    try:
        assert ldap.authenticate("frank", "frank-ldap-pw") == {"readers"}
    finally:
        _ldapmodify(frank + "add: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")
    assert ldap.authenticate("frank", "frank-ldap-pw") is None


def test_a_nested_group_does_not_count(ca_file):
    # grace is in registry-ops, which is a member of registry-admins: she is no admin. The
    # control: dave, a direct member of registry-admins, is.
    ldap = directory(ca_file)
    assert ldap.authenticate("grace", "grace-ldap-pw") == set()
    assert ldap.authenticate("dave", "dave-ldap-pw") == {"admins"}


def test_filter_characters_in_a_name_match_nothing(ca_file):
    # Unescaped, "*" would match every uid (more than one entry) and "d*" dave alone.
    ldap = directory(ca_file)
    for name in ("*", "d*", "dave)(uid=*", "dave\\"):
        assert ldap.authenticate(name, "dave-ldap-pw") is None, name


def test_starttls_on_the_plain_port_works(ca_file):
    ldap = directory(ca_file, urls=["ldap://127.0.0.1:%d" % LDAP_PORT], start_tls=True)
    assert ldap.authenticate("dave", "dave-ldap-pw") == {"admins"}


def test_the_next_server_answers_when_the_first_is_down(ca_file):
    ldap = directory(ca_file, urls=["ldaps://127.0.0.1:1", "ldaps://127.0.0.1:%d" % LDAPS_PORT])
    assert ldap.authenticate("dave", "dave-ldap-pw") == {"admins"}


@pytest.mark.parametrize(
    ("why", "changes", "password"),
    [
        ("no server answers", {"urls": ["ldaps://127.0.0.1:1"]}, SEARCH_PASSWORD),
        ("a certificate from a CA not given", {"ca_file": None}, SEARCH_PASSWORD),
        ("the service account's password is wrong", {}, "not the search password"),
    ],
)
def test_a_directory_that_cannot_tell_is_unavailable_not_a_wrong_password(
    ca_file, why, changes, password
):
    ldap = directory(ca_file, password=password, **changes)
    with pytest.raises(token_ldap.DirectoryUnavailable):
        ldap.authenticate("dave", "dave-ldap-pw")


def test_member_of_mode_takes_the_users_attribute(ca_file):
    # This slapd has no memberOf overlay: the users have no memberOf, so no group maps.
    ldap = directory(ca_file, group_mode="member_of")
    assert ldap.authenticate("dave", "dave-ldap-pw") == frozenset()


def test_names_of_groups_compare_without_case_or_spacing():
    assert token_ldap.normal_dn("CN=Admins, OU=Groups,DC=x") == "cn=admins,ou=groups,dc=x"


def test_servers_that_refuse_connections_are_given_up_on_at_once(ca_file):
    # ldap3's server pool sleeps 10 s between rounds: a sign-in waited that long for a 503.
    ldap = directory(ca_file, urls=["ldaps://127.0.0.1:1", "ldaps://127.0.0.1:2"])
    started = time.monotonic()
    with pytest.raises(token_ldap.DirectoryUnavailable, match="no directory server answered"):
        ldap.authenticate("dave", "dave-ldap-pw")
    assert time.monotonic() - started < 2
