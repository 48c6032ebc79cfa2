"""Backups, the registry host lost, and its restore (after test_1_upgrade.py, on the
registry it leaves: 2.8.3 with a catalog that holds a multi-arch index).

The tests run in file order and share one record (STATE): backups by the timer's service
and by playbooks/backup.yml while a client pushes, the host destroyed with its volumes and
built again under the same name, playbooks/restore.yml, and what the client, onboarded
before the loss and untouched since, finds. A damaged repository and a restore onto a live
registry must be refused. The figures go to artifacts/backup.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from registry_helpers import (
    SERVER_STATE,
    STOCK_STRATEGY,
    catalog_digests,
    converge,
    http,
    leaked,
    pull_by_digest,
    push_load,
    push_unique_image,
    recap,
    replace_hosts,
    storage_s3,
)

ARTIFACTS = Path(os.environ.get("PRIVREG_ARTIFACTS", "artifacts"))
USER, PASSWORD = "pusher", "molecule-pusher-pw"
STATE: dict = {}


@pytest.fixture(scope="module")
def client(client_a):
    return client_a


@pytest.fixture(scope="module")
def variables(inventory):
    return inventory.get_variables("registry")


def secrets_of(variables):
    return [variables["backup_password"], variables["s3_secret_key"], PASSWORD]


def catalog(client, registry):
    return catalog_digests(client, registry, USER, PASSWORD)


def pushed_tags(client, registry):
    url = "https://%s/v2/load/pushes/tags/list" % registry
    answer = http(client, url, USER, PASSWORD)
    return json.loads(answer["body"]).get("tags") or [] if answer["status"] == 200 else []


def backup_record(server):
    return json.loads(server.file("/var/lib/privreg/backup.json").content_string)


def repository_objects(variables):
    """The backup repository's objects on the S3 server: {key: size}."""
    bucket = storage_s3(variables).Bucket("backups")
    return bucket, {item.key: item.size for item in bucket.objects.filter(Prefix="registry/")}


def test_the_leak_check_finds_a_planted_password_in_every_rendering(variables, tmp_path):
    """The check the next tests rely on, against real Ansible output: a task that shows the
    password (no no_log) in YAML and in JSON results, and in a command line."""
    play = tmp_path / "planted.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        var: planted\n"
        "    - ansible.builtin.command:\n        argv: [echo, '{{ planted | quote }}']\n"
        "      changed_when: false\n"
    )
    password = variables["backup_password"]
    for result_format in ("yaml", "json"):
        result = subprocess.run(
            ["ansible-playbook", str(play), "-vvv", "-e", json.dumps({"planted": password})],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT=result_format, **STOCK_STRATEGY),
        )
        assert result.returncode == 0, result.stdout[-2000:]
        assert leaked([password], result.stdout) == [0], result_format
    # Each rendering on its own, where the raw form is absent.
    assert leaked([password], json.dumps({"p": password})) == [0]
    assert leaked(["a 'b' c"], "p: 'a ''b'' c'") == [0]
    assert leaked(['ÿ"x'], json.dumps('ÿ"x')) == [0]
    assert leaked([password], "nothing here") == []


def test_the_backup_timer_is_installed_and_scheduled(server):
    timer = server.service("registry-backup.timer")
    assert timer.is_enabled
    assert timer.is_running  # a timer "runs" while it waits for its next elapse
    shown = server.check_output(
        "systemctl show registry-backup.timer -p NextElapseUSecRealtime -p TimersCalendar"
    )
    assert "OnCalendar=*-*-* 02:30:00" in shown, shown
    next_elapse = re.search(r"^NextElapseUSecRealtime=(.*)$", shown, re.MULTILINE)
    assert next_elapse, shown
    assert next_elapse.group(1).strip(), shown  # a time is set: the timer will fire
    assert "registryctl backup " in server.check_output(
        "systemctl show registry-backup.service -p ExecStart"
    )


def test_the_timers_backup_succeeds_and_its_journal_holds_no_secret(server, variables):
    """What the timer starts at night, started now: a snapshot, its record for monitoring,
    and a journal with the report and without the password or the keys."""
    since = server.check_output("date '+%Y-%m-%d %H:%M:%S'")
    server.check_output("systemctl start registry-backup.service")  # oneshot: waits
    record = backup_record(server)
    assert record["result"] == "ok", record
    assert record["snapshot"], record
    assert record["files"] > 0, record
    journal = server.check_output("journalctl --no-pager --since %s -o cat", since)
    assert record["snapshot"] in journal  # the service reported its snapshot there
    assert leaked(secrets_of(variables), journal) == []
    STATE["first_snapshot"] = record["snapshot"]


def test_a_backup_while_pushes_go_on_is_taken_without_freezing(server, client, registry, variables):
    """backup.yml (-vvv --diff) while a client pushes image after image: no push fails, no
    secret reaches the output, and the record says when the store was staged."""
    STATE["before"] = catalog(client, registry)
    with push_load("client-a", registry + "/load/pushes") as pushes:
        deadline = time.monotonic() + 120
        while len(pushed_tags(client, registry)) < 3:  # some pushes before the backup
            assert time.monotonic() < deadline, "no pushes before the backup"
            time.sleep(1)
        started = time.monotonic()
        rc, output = converge("-vvv", "--diff", playbook="playbooks/backup.yml")
        STATE["backup_playbook_seconds"] = round(time.monotonic() - started, 1)
        time.sleep(8)  # pushes after the backup: a restore must not claim them
    assert rc == 0, output[-3000:]
    assert "EXEC [" in output  # -vvv really was on: the connection's commands are shown
    assert leaked(secrets_of(variables), output) == []
    record = backup_record(server)
    assert record["result"] == "ok", record
    finished = [push for push in pushes if push["digest"]]
    failed = [push for push in pushes if not push["digest"]]
    assert failed == [], failed  # never frozen: every push during the backup went through
    during = [
        push
        for push in pushes
        if record["started"] < push["finished"] and push["started"] < record["finished"]
    ]
    after = [push for push in finished if push["started"] > record["staged_until"]]
    assert during, "no push ran while the backup did"
    assert after, "no push began after the store was staged"
    STATE.update(record=record, pushes=finished)


def test_the_latest_snapshot_verifies_without_touching_the_registry(server, variables):
    """backup.yml --check: restic reads every pack; the snapshot's store, restored into a
    scratch directory, has every blob whole and every tag's manifests and blobs."""
    before = server.check_output(SERVER_STATE)
    started = time.monotonic()
    rc, output = converge("--check", playbook="playbooks/backup.yml")
    assert rc == 0, output[-3000:]
    expected_tags = sum(len(tags) for tags in STATE["before"].values())
    verified = [line for line in output.splitlines() if "Verified the latest snapshot" in line]
    assert verified, output[-3000:]
    blobs, tags = (int(n) for n in re.findall(r"(\d+) (?:blobs|tags)", verified[0]))
    # Every tag listed before the backup, and the pushes the stage saw, no fewer.
    assert tags >= expected_tags, (tags, expected_tags)
    assert blobs > 0
    assert server.check_output(SERVER_STATE) == before
    assert server.run("ls -d /opt/registry/data/.privreg-verify.*").rc != 0  # scratch removed
    seconds = round(time.monotonic() - started, 1)
    STATE["verify"] = {"blobs": blobs, "tags": tags, "seconds": seconds}


def test_a_restore_onto_the_live_registry_is_refused_and_changes_nothing(server):
    before = server.check_output(SERVER_STATE)
    rc, output = converge("--limit", "registry", playbook="playbooks/restore.yml")
    assert rc != 0
    assert "has a registry already" in output, output[-3000:]
    assert "registry_maintenance_restore_force" in output
    assert server.check_output(SERVER_STATE) == before


def test_the_lost_host_is_restored_from_its_backup(server, variables):
    """The registry host destroyed (container and volumes), a new one of the same name, and
    restore.yml for it alone (-vvv --diff: no secret in its output either)."""
    _store, objects = repository_objects(variables)
    STATE["repository_bytes"] = sum(objects.values())
    replace_hosts("registry")
    assert server.run("test -e /opt/registry").rc != 0  # nothing of the old host is left
    started = time.monotonic()
    rc, output = converge("-vvv", "--diff", "--limit", "registry", playbook="playbooks/restore.yml")
    STATE["restore_seconds"] = round(time.monotonic() - started, 1)
    assert rc == 0, output[-5000:]
    assert leaked(secrets_of(variables), output) == []


def test_the_untouched_client_pulls_every_image_of_the_backup_with_its_digest(client, registry):
    """The client onboarded before the loss, not converged since: same CA (no x509 error),
    same login, and every tag it saw before the backup resolves to the same digest and
    pulls; of the pushes under load, those done before the stage are there, those begun
    after it are not, and each one that is there pulls whole."""
    record = STATE["record"]
    restored = catalog(client, registry)
    for repository, tags in STATE["before"].items():
        assert restored.get(repository, {}) == tags, repository
    pushed = {push["tag"]: push for push in STATE["pushes"]}
    present = restored.get("load/pushes", {})
    before_stage = {t for t, p in pushed.items() if p["finished"] < record["staged_from"]}
    after_stage = {t for t, p in pushed.items() if p["started"] > record["staged_until"]}
    assert before_stage <= set(present), sorted(before_stage - set(present))
    assert after_stage.isdisjoint(present), sorted(after_stage & set(present))
    assert all(present[tag]["digest"] == pushed[tag]["digest"] for tag in present)
    pulled = 0
    for repository, tags in restored.items():
        for entry in tags.values():
            if entry["children"]:
                for child, arch in zip(entry["children"], ("amd64", "arm64")):
                    pull_by_digest(client, registry, repository, child, "linux/" + arch)
                    pulled += 1
            else:
                pull_by_digest(client, registry, repository, entry["digest"])
                pulled += 1
    STATE["images_verified"] = pulled
    STATE["pushes_in_the_backup"] = len(present)
    STATE["pushes_after_it"] = len(after_stage)


def test_the_restored_store_is_whole(server):
    report = json.loads(
        server.check_output(
            "/usr/local/sbin/registryctl verify-store /opt/registry/data/docker/registry/v2"
        ).splitlines()[-1]
    )
    assert report["missing"] == []
    assert report["corrupt_blobs"] == []
    assert report["ok"] is True
    assert report["tags"] >= sum(len(t) for t in STATE["before"].values())


def test_the_restored_registry_takes_pushes(client, registry):
    pushed = push_unique_image(client, registry + "/after/restore", tag="1")
    pull_by_digest(client, registry, "after/restore", pushed["digest"])


def test_the_next_converge_changes_nothing():
    """On the restored host (the client was never touched: the point of the restore)."""
    rc, output = converge("--limit", "registry")
    assert rc == 0, output[-3000:]
    changed = {host: counts["changed"] for host, counts in recap(output).items()}
    assert set(changed.values()) == {0}, changed


def test_a_damaged_pack_in_the_repository_fails_the_check(server, variables):
    """A byte changed inside one pack of the repository (on the S3 server): backup.yml
    --check says the snapshot did not verify, and the registry is left as it was."""
    bucket, objects = repository_objects(variables)
    packs = {key: size for key, size in objects.items() if key.startswith("registry/data/")}
    pack = bucket.Object(max(packs, key=packs.get))
    body = bytearray(pack.get()["Body"].read())
    body[len(body) // 2] ^= 0xFF
    pack.put(Body=bytes(body))
    before = server.check_output(SERVER_STATE)
    rc, output = converge("--check", playbook="playbooks/backup.yml")
    assert rc != 0
    assert "did not verify" in output, output[-3000:]
    assert server.check_output(SERVER_STATE) == before

    figures = {
        "catalog": {
            "repositories": len(STATE["before"]),
            "tags": sum(len(t) for t in STATE["before"].values()),
        },
        "backup_under_load": {
            "seconds": STATE["record"]["seconds"],
            "playbook_seconds": STATE["backup_playbook_seconds"],
            "staged_under_the_lock_seconds": STATE["record"]["lock_seconds"],
            "seconds_frozen": 0,
            "files": STATE["record"]["files"],
            "bytes": STATE["record"]["bytes"],
            "bytes_added": STATE["record"]["bytes_added"],
            "pushes": len(STATE["pushes"]),
            "pushes_failed": 0,
        },
        "repository_bytes_on_s3": STATE["repository_bytes"],
        "verify": STATE["verify"],
        "restore_playbook_seconds": STATE["restore_seconds"],
        "images_verified_after_restore": STATE["images_verified"],
        "pushes_under_load_in_the_backup": STATE["pushes_in_the_backup"],
        "pushes_after_the_stage_absent": STATE["pushes_after_it"],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "backup.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
