"""registry_htpasswd: bcrypt entries, idempotence, exclusive lists and refused input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import bcrypt
import pytest

from ansible_collections.privreg.registry.plugins.module_utils import htpasswd
from ansible_collections.privreg.registry.plugins.modules import registry_htpasswd

ALICE = {"name": "alice", "password": "correct horse"}
BOB = {"name": "bob", "password": "battery staple"}


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "htpasswd")


@pytest.fixture
def htpasswd_module(run_module, path):
    def _run(users, check_mode=False, diff=False, **extra):
        args = dict(path=path, users=users, cost=4)
        args.update(extra)
        return run_module(registry_htpasswd.main, args, check_mode=check_mode, diff=diff)

    return _run


def entries(path):
    with open(path) as handle:
        return htpasswd.parse(handle.read())


def test_creates_private_file_with_bcrypt_entries(htpasswd_module, path):
    code, result = htpasswd_module([ALICE, BOB])
    assert code == 0
    assert result["changed"]
    assert result["added"] == ["alice", "bob"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    found = entries(path)
    assert list(found) == ["alice", "bob"]
    for user in (ALICE, BOB):
        hashed = found[user["name"]]
        assert hashed.startswith("$2y$04$")
        assert htpasswd.is_bcrypt(hashed)
        # Checked with the bcrypt library itself, not with the code under test.
        assert bcrypt.checkpw(user["password"].encode(), hashed.replace("$2y$", "$2b$").encode())


def test_second_run_changes_nothing(htpasswd_module, path):
    htpasswd_module([ALICE, BOB])
    before = Path(path).read_text()
    result = htpasswd_module([ALICE, BOB])[1]
    assert result["changed"] is False
    assert not (result["added"])
    assert not (result["updated"])
    assert Path(path).read_text() == before


def test_changed_password_is_rehashed(htpasswd_module, path):
    htpasswd_module([ALICE, BOB])
    old = entries(path)
    result = htpasswd_module([dict(ALICE, password="new one"), BOB])[1]
    assert result["updated"] == ["alice"]
    assert result["changed"]
    new = entries(path)
    assert new["bob"] == old["bob"]
    assert new["alice"] != old["alice"]
    assert htpasswd.verify_password("new one", new["alice"])


def test_changed_cost_rehashes_every_listed_user(htpasswd_module, path):
    # The cost is the price of each check (the registry runs one per request): an operator
    # who changes it expects the change to reach the existing entries, not only new ones.
    htpasswd_module([ALICE, BOB])
    result = htpasswd_module([ALICE, BOB], cost=5)[1]
    assert result["changed"]
    assert result["updated"] == ["alice", "bob"]
    found = entries(path)
    for user in (ALICE, BOB):
        assert found[user["name"]].startswith("$2y$05$")
        assert htpasswd.verify_password(user["password"], found[user["name"]])
    assert htpasswd_module([ALICE, BOB], cost=5)[1]["changed"] is False


def test_unlisted_users_keep_their_cost(htpasswd_module, path):
    # Their passwords are unknown here, so they cannot be rehashed.
    htpasswd_module([ALICE, BOB])
    result = htpasswd_module([ALICE], cost=5)[1]
    assert result["updated"] == ["alice"]
    assert entries(path)["bob"].startswith("$2y$04$")


def test_absent_user_is_removed(htpasswd_module, path):
    htpasswd_module([ALICE, BOB])
    result = htpasswd_module([{"name": "bob", "state": "absent"}])[1]
    assert result["removed"] == ["bob"]
    assert list(entries(path)) == ["alice"]


def test_unlisted_users_stay_unless_exclusive(htpasswd_module, path):
    htpasswd_module([ALICE, BOB])
    kept = htpasswd_module([ALICE])[1]
    assert kept["changed"] is False
    assert list(entries(path)) == ["alice", "bob"]
    result = htpasswd_module([ALICE], exclusive=True)[1]
    assert result["removed"] == ["bob"]
    assert list(entries(path)) == ["alice"]


def test_non_bcrypt_entry_is_replaced(htpasswd_module, path):
    with open(path, "w") as handle:
        handle.write("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    result = htpasswd_module([ALICE])[1]
    assert result["updated"] == ["alice"]
    assert htpasswd.is_bcrypt(entries(path)["alice"])


def test_check_mode_writes_nothing(htpasswd_module, path):
    result = htpasswd_module([ALICE], check_mode=True)[1]
    assert result["changed"]
    assert result["added"] == ["alice"]
    assert not os.path.exists(path)
    htpasswd_module([ALICE])
    before = Path(path).read_text()
    result = htpasswd_module([BOB], check_mode=True, exclusive=True)[1]
    assert result["added"] == ["bob"]
    assert result["removed"] == ["alice"]
    assert Path(path).read_text() == before


def test_diff_shows_names_only(htpasswd_module, path):
    htpasswd_module([ALICE, BOB])
    hashes = entries(path).values()
    result = htpasswd_module(
        [dict(ALICE, password="rotated"), {"name": "carol", "password": "pw3"}], diff=True
    )[1]
    diff = result["diff"]
    assert diff["before"] == "alice\nbob\n"
    assert diff["after"] == "alice (password set)\nbob\ncarol\n"
    text = str(result)
    for secret in ["rotated", "pw3", "correct horse", *hashes, *entries(path).values()]:
        assert secret not in text


@pytest.mark.parametrize(
    ("users", "fragment"),
    [
        ([{"name": "ali:ce", "password": "x"}], "contains ':'"),
        ([{"name": "alice", "password": ""}], "(alice) has an empty password"),
        ([{"name": "alice"}], "(alice) has an empty password"),
        ([{"name": "", "password": "x"}], "has no name"),
        ([ALICE, dict(ALICE)], "appears twice"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(htpasswd_module, path, users, fragment):
    htpasswd_module([BOB])
    before = Path(path).read_text()
    code, result = htpasswd_module(users, exclusive=True)
    assert code == 1
    assert fragment in result["msg"]
    assert Path(path).read_text() == before


def test_cost_out_of_range_is_refused(htpasswd_module, path):
    code, result = htpasswd_module([ALICE], cost=3)
    assert code == 1
    assert "cost" in result["msg"]
    assert not os.path.exists(path)


def test_parse_refuses_garbage():
    with pytest.raises(htpasswd.HtpasswdError):
        htpasswd.parse("no separator here\n")
