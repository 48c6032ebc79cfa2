"""People from the company directory sign in to the token service (registry_token_ldap_*,
molecule.yml): search, then bind, over LDAPS with the directory's own CA, after a first
directory URL that does not answer. Their rights come from the groups the mapping names;
a local account wins a name clash; with the directory down they get 503 and local accounts
still work. The people and passwords are the ones tests/lab/slapd-setup.sh puts there."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import (
    ARTIFACTS,
    DIRECTORY,
    PASSWORDS,
    REALM,
    REGISTRY,
    ROBOT_SECRETS,
    SERVICE,
    TOKEN_LOAD,
    ask,
    assert_token_load,
    granted,
)
from registry_helpers import test_host, unique_image

SEARCH_PASSWORD = "search pw: ldap $ecret"
TOKEN_DIR = "/opt/registry/token"


@pytest.fixture(scope="module")
def containerd_client():
    return test_host("containerd-client")


@pytest.fixture(scope="module")
def caller():
    """Asks for tokens from a host of its own: the other files' failed logins from client-a
    count against client-a's address."""
    return test_host("podman-client")


def test_a_directory_admin_gets_the_admins_rights(caller):
    # dave is no local user and no member of registry_token_groups: his rights come from
    # registry-admins in the directory, mapped to admins ("*" on every repository).
    access = granted(ask(caller, "dave", DIRECTORY["dave"], "repository:team/app:pull,push,delete"))
    assert access[("repository", "team/app")] == ["delete", "pull", "push"]


def test_a_directory_reader_gets_the_readers_rights_and_her_own_namespace(caller):
    access = granted(
        ask(
            caller,
            "erin",
            DIRECTORY["erin"],
            "repository:alice/app:pull,push",
            "repository:bob/app:pull",
            "repository:erin/app:pull,push",
        )
    )
    assert access[("repository", "alice/app")] == ["pull"]  # readers pull alice/*
    assert access[("repository", "bob/app")] == []
    assert access[("repository", "erin/app")] == ["pull", "push"]  # ${account}/*


def test_wrong_passwords_unknown_names_and_filter_characters_get_401(caller):
    assert ask(caller, "dave", DIRECTORY["erin"])["status"] == 401
    assert ask(caller, "nobody", DIRECTORY["dave"])["status"] == 401
    # Unescaped, "d*" would find dave alone and his password would let it in.
    assert ask(caller, "d*", DIRECTORY["dave"])["status"] == 401


def test_a_disabled_person_cannot_sign_in_and_a_nested_group_does_not_count(caller):
    # frank (registry-readers) is locked in the directory (ppolicy); grace is in
    # registry-ops, itself a member of registry-admins: not an admin.
    assert ask(caller, "frank", "frank-ldap-pw")["status"] == 401
    scope = "repository:team/app:pull,push,delete"
    assert granted(ask(caller, "grace", "grace-ldap-pw", scope))[("repository", "team/app")] == []


def test_a_local_account_wins_a_name_clash_with_the_directory(caller):
    assert ask(caller, "alice", DIRECTORY["alice"])["status"] == 401
    assert ask(caller, "alice", PASSWORDS["alice"])["status"] == 200


def test_a_directory_user_pushes_and_another_pulls_on_another_host(client, caller):
    # dave (admins) pushes into erin's namespace from client-a; erin pulls it with Podman.
    config = "/root/docker-dave"
    client.check_output(
        "mkdir -p %s && echo %s | DOCKER_CONFIG=%s docker login -u dave --password-stdin %s",
        config,
        DIRECTORY["dave"],
        config,
        REGISTRY,
    )
    reference = unique_image(client, REGISTRY + "/erin/from-dave")[0]
    pushed = client.check_output("DOCKER_CONFIG=%s docker push %s", config, reference)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed).group(1)
    caller.check_output(
        "echo %s | podman login -u erin --password-stdin %s", DIRECTORY["erin"], REGISTRY
    )
    caller.check_output("podman pull %s", reference)
    assert digest in caller.check_output(
        "podman image inspect --format '{{.Digest}}' %s", reference
    )


def test_with_the_directory_down_its_people_get_503_and_local_accounts_still_work(caller, server):
    ldap = test_host("ldap")
    ldap.check_output("systemctl stop slapd")
    try:
        down = ask(caller, "dave", DIRECTORY["dave"])
        assert down["status"] == 503, down
        assert "directory" in down["body"]
        assert ask(caller, "alice", PASSWORDS["alice"])["status"] == 200
        assert ask(caller, "robot$ci", ROBOT_SECRETS["robot$ci"])["status"] == 200
        journal = server.check_output(
            "journalctl -u registry-token --since '-5 min' --no-pager -o cat"
        )
        assert "directory: " in journal, journal[-2000:]
    finally:
        ldap.check_output("systemctl start slapd")
    # Back at once: a 503 is not a failed login, so dave is not held back either.
    for _attempt in range(20):
        back = ask(caller, "dave", DIRECTORY["dave"])
        if back["status"] == 200:
            break
        time.sleep(0.5)
    assert back["status"] == 200, back


def test_no_directory_password_reaches_the_journal_or_a_readable_file(server):
    journal = server.check_output("journalctl -u registry-token --no-pager -o cat")
    for secret in [*DIRECTORY.values(), SEARCH_PASSWORD]:
        assert secret not in journal
    settings = server.file(TOKEN_DIR + "/ldap.json")
    assert (settings.user, settings.group, settings.mode) == ("root", "registry-token", 0o640)
    assert SEARCH_PASSWORD not in server.file(TOKEN_DIR + "/service.json").content_string


def _member(change, group, person):
    """Add or delete a person as a member of a directory group (root's ldapi on the host)."""
    ldif = (
        "dn: cn=%s,ou=groups,dc=privreg,dc=test\nchangetype: modify\n%s: member\n"
        % (
            group,
            change,
        )
        + "member: uid=%s,ou=people,dc=privreg,dc=test\n" % person
    )
    test_host("ldap").check_output("printf '%%s' %s | ldapmodify -Q -Y EXTERNAL -H ldapi:///", ldif)


def test_group_changes_in_the_directory_count_from_the_next_token(caller):
    def delete_right():
        scope = "repository:team/app:delete"
        return granted(ask(caller, "erin", DIRECTORY["erin"], scope))[("repository", "team/app")]

    assert delete_right() == []
    _member("add", "registry-admins", "erin")
    try:
        assert delete_right() == ["delete"]
    finally:
        _member("delete", "registry-admins", "erin")
    assert delete_right() == []


def test_token_latency_of_a_directory_user_against_a_local_user(client):
    """20 concurrent clients for 10 s each way, from the same host in the same run: alice
    (local: bcrypt at cost 10) and dave (the directory: search, bind, group search)."""
    query = "?service=%s&scope=repository:team/app:pull" % SERVICE
    report = {}
    for user, password in (("alice", PASSWORDS["alice"]), ("dave", DIRECTORY["dave"])):
        out = client.check_output(
            "python3 -c %s %s %s %s 20 10", TOKEN_LOAD, REALM + query, user, password
        )
        report[user] = json.loads(out)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "acl-ldap.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    for load in report.values():
        assert_token_load(load)


def test_a_wrong_directory_password_counts_as_a_failed_login(containerd_client):
    # From a host of its own: its address is held back for the window afterwards.
    for _attempt in range(5):  # registry_token_failure_limit
        assert ask(containerd_client, "erin", "not erin's")["status"] == 401
    assert ask(containerd_client, "erin", DIRECTORY["erin"])["status"] == 429
