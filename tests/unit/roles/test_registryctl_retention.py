"""registryctl's retention (roles/host_control/files/registryctl.py) on a store laid out as
the registry's filesystem driver writes it: the plan's tags and bytes, the re-check that
spares a tag pushed after the plan, the reports kept, and the refusals. The registry itself
(freeze, collection) runs in the Molecule scenario default (tests/test_retention.py)."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest

from ansible_collections.privreg.registry.tests.unit.roles.role_files import ROOT, load_role_file
from ansible_collections.privreg.registry.tests.unit.roles.test_registryctl_backup import Store

ctl = load_role_file("host_control", "registryctl")
NOW = 1_800_000_000
DAY = 86400
RULES = [{"repositories": "ci/*", "keep_last": 1, "keep_tags": "latest"}]


@pytest.fixture(autouse=True)
def rules_module(monkeypatch):
    monkeypatch.setattr(ctl, "RETENTION_LIB", str(ROOT / "plugins" / "module_utils"))
    monkeypatch.setattr(sys, "path", list(sys.path))


def pushed(store, repository, tag, days_ago):
    link = store.v2 / "repositories" / repository / "_manifests" / "tags" / tag / "current" / "link"
    os.utime(link, (NOW - days_ago * DAY, NOW - days_ago * DAY))


def size(store, *digests):
    return sum(
        (store.v2 / "blobs" / "sha256" / d[7:9] / d[7:] / "data").stat().st_size for d in digests
    )


@pytest.fixture
def store(tmp_path):
    """ci/app: new (1 day), old (5 days), older (9 days, an index of two images), latest (on
    old's image, 30 days); ci/app's old image is shared with the tag keep of other/x."""
    s = Store(tmp_path)
    s.refs = {}
    s.refs["new"] = s.image("ci/app", "new", layers=[b"new-layer"])
    s.refs["old"] = s.image("ci/app", "old", layers=[b"old-layer", b"old-layer-2"])
    s.tag("ci/app", "latest", s.refs["old"][0])
    amd = s.image("ci/app", "amd", layers=[b"amd-layer"])
    arm = s.image("ci/app", "arm", layers=[b"arm-layer"])
    # The children are untagged, as a pushed multi-arch image's are.
    for child in ("amd", "arm"):
        os.remove(
            s.v2 / "repositories" / "ci/app" / "_manifests" / "tags" / child / "current" / "link"
        )
        os.rmdir(s.v2 / "repositories" / "ci/app" / "_manifests" / "tags" / child / "current")
        os.rmdir(s.v2 / "repositories" / "ci/app" / "_manifests" / "tags" / child)
    s.refs["older"] = s.index("ci/app", "older", [amd[0], arm[0]])
    s.refs["amd"], s.refs["arm"] = amd, arm
    s.refs["keep"] = s.image("other/x", "keep", layers=[b"other-layer"])
    for tag, days in (("new", 1), ("old", 5), ("older", 9), ("latest", 30)):
        pushed(s, "ci/app", tag, days)
    pushed(s, "other/x", "keep", 100)
    return s


def plan(store):
    return ctl.retention_plan(ctl.FilesystemStore(str(store.v2)), RULES, NOW)


def test_the_plan_deletes_by_push_time_and_counts_only_what_no_kept_tag_reaches(store):
    report = plan(store)
    (entry,) = report["repositories"]  # other/x: no rule
    assert entry["repository"] == "ci/app"
    assert [t["tag"] for t in entry["delete"]] == ["old", "older"]
    by_tag = {t["tag"]: t["bytes"] for t in entry["delete"]}
    # old's image stays (latest is on it): nothing of it is freed.
    assert by_tag["old"] == 0
    amd, arm, index = store.refs["amd"], store.refs["arm"], store.refs["older"]
    older_bytes = size(store, index, amd[0], amd[1], *amd[2], arm[0], arm[1], *arm[2])
    assert by_tag["older"] == older_bytes
    assert report["bytes_to_free"] == older_bytes
    assert report["tags_before"] == 4
    assert report["tags_to_delete"] == 2


def test_only_tags_still_as_planned_are_deleted(store):
    fs = ctl.FilesystemStore(str(store.v2))
    report = ctl.retention_plan(fs, RULES, NOW)
    # After the plan: old is pushed again (same digest, new push time), older is gone.
    pushed(store, "ci/app", "old", 0)
    fs.delete_tag("ci/app", "older")
    deleted, skipped, unlinked = ctl.delete_planned(fs, report)
    assert (deleted, skipped, unlinked) == (0, 2, 0)
    assert report["repositories"][0]["skipped"] == [
        {"tag": "old", "reason": "pushed during the run"},
        {"tag": "older", "reason": "already gone"},
    ]
    assert fs.tag("ci/app", "old") is not None


def test_a_tag_moved_to_another_digest_after_the_plan_stays(store):
    fs = ctl.FilesystemStore(str(store.v2))
    report = ctl.retention_plan(fs, RULES, NOW)
    store.tag("ci/app", "old", store.refs["new"][0])
    pushed(store, "ci/app", "old", 5)  # even with the planned push time
    deleted, skipped, unlinked = ctl.delete_planned(fs, report)
    assert (deleted, skipped) == (1, 1)  # older deleted, old skipped
    assert unlinked == 3  # the index older and its two children
    assert fs.tag("ci/app", "old")["digest"] == store.refs["new"][0]
    assert fs.tag("ci/app", "older") is None
    assert fs.tag("ci/app", "latest") is not None


def test_reports_keep_the_newest(tmp_path, monkeypatch):
    monkeypatch.setattr(ctl, "REPORTS_DIR", str(tmp_path / "reports"))
    for second in range(5):
        ctl.write_report({"started": NOW + second, "dry_run": second % 2 == 0}, kept=3)
    names = sorted(os.listdir(tmp_path / "reports"))
    assert len(names) == 3
    assert names[-1].startswith("retention-20270115T080004")
    assert oct((tmp_path / "reports").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"replicas": 2, "major_version": 3, "storage_driver": "filesystem"}, "replicas"),
        ({"replicas": 1, "major_version": 3, "storage_driver": "azure"}, "local disk or in S3"),
        ({"replicas": 1, "major_version": 3, "storage_driver": "s3", "s3": {}}, "needs rclone"),
    ],
)
def test_retention_is_refused_where_it_cannot_run(config, expected, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(ctl, "CONFIG", dict(config, data_dir=str(tmp_path)))
    monkeypatch.setattr(ctl.shutil, "which", lambda name: None)  # no rclone here
    monkeypatch.setattr(ctl, "acquire", lambda *a, **k: pytest.fail("took the lock"))
    args = type("Args", (), {"rules_stdin": False, "dry_run": True, "wait": 0})()
    assert ctl.retain_command(args, {}) == 1
    assert expected in json.loads(capsys.readouterr().out.splitlines()[-1])["error"]


def test_broken_rules_on_stdin_are_refused_before_the_lock(monkeypatch, capsys, tmp_path):
    config = {"replicas": 1, "major_version": 3, "storage_driver": "filesystem"}
    monkeypatch.setattr(ctl, "CONFIG", dict(config, data_dir=str(tmp_path)))
    monkeypatch.setattr(ctl, "acquire", lambda *a, **k: pytest.fail("took the lock"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps([{"repositories": "x"}])))
    args = type("Args", (), {"rules_stdin": True, "dry_run": False, "wait": 0})()
    assert ctl.retain_command(args, {}) == 1
    assert "[0] keeps nothing" in json.loads(capsys.readouterr().out.splitlines()[-1])["error"]


def test_the_role_installs_the_rules_where_registryctl_imports_them():
    import yaml  # noqa: PLC0415

    constants = yaml.safe_load((ROOT / "roles" / "host_control" / "vars" / "main.yml").read_text())
    assert (
        constants["_host_control_library_dir"]
        == load_role_file("host_control", "registryctl").RETENTION_LIB
    )


def test_a_collection_of_a_registry_nothing_was_pushed_to_frees_nothing(monkeypatch):
    """The registry's garbage-collect fails on a store without repositories; registryctl
    reports that nothing was collected (a timer on a new registry must not fail)."""
    answer = type(
        "Result",
        (),
        {
            "returncode": 1,
            "stdout": "",
            "stderr": "failed to garbage collect: failed to mark: filesystem: "
            "Path not found: /docker/registry/v2/repositories",
        },
    )()
    monkeypatch.setattr(ctl, "CONFIG", {"container": "registry", "readonly_config": "/c.yml"})
    monkeypatch.setattr(ctl.subprocess, "run", lambda *a, **k: answer)
    report = ctl.garbage_collect(False, True)
    assert (report["blobs_deleted"], report["manifests_deleted"]) == (0, 0)
    answer.stderr = "failed to garbage collect: permission denied"
    with pytest.raises(ctl.ControlError, match="permission denied"):
        ctl.garbage_collect(False, True)


def test_a_deleted_tag_goes_to_the_trash_beside_the_store_in_one_rename(store, tmp_path):
    fs = ctl.FilesystemStore(str(store.v2))
    inode = (store.v2 / "repositories" / "ci/app" / "_manifests" / "tags" / "old").stat().st_ino
    fs.delete_tag("ci/app", "old")
    trash = tmp_path / ctl.TRASH
    assert [p.stat().st_ino for p in trash.iterdir()] == [inode]
    assert fs.tag("ci/app", "old") is None
    assert [t["tag"] for t in fs.tags("ci/app")] == ["latest", "new", "older"]
    fs.empty_trash()
    assert not trash.exists()


def test_a_tag_whose_link_is_not_a_digest_is_never_a_candidate(store):
    """A link the registry did not write (damaged, or planted) names no path and no tag."""
    link = store.v2 / "repositories" / "ci/app" / "_manifests" / "tags" / "old" / "current" / "link"
    link.write_text("sha256:../../../../etc")
    pushed(store, "ci/app", "old", 5)
    report = plan(store)
    assert [t["tag"] for t in report["repositories"][0]["delete"]] == ["older"]


def test_deleted_tags_take_the_manifests_only_they_reached_and_nothing_else(store):
    """older (an index) goes with its children; old's image stays with latest; a manifest
    pushed by digest, which no tag ever reached, stays."""
    by_digest = store.image("ci/app", "by-digest", layers=[b"digest-only"])
    tags_dir = store.v2 / "repositories" / "ci/app" / "_manifests" / "tags" / "by-digest"
    for path in (tags_dir / "current" / "link", tags_dir / "current", tags_dir):
        path.unlink() if path.is_file() else path.rmdir()
    fs = ctl.FilesystemStore(str(store.v2))
    report = ctl.retention_plan(fs, RULES, NOW)
    index, amd, arm = store.refs["older"], store.refs["amd"][0], store.refs["arm"][0]
    assert report["repositories"][0]["manifests"] == sorted([index, amd, arm])
    assert ctl.delete_planned(fs, report) == (2, 0, 3)
    assert sorted(fs.revisions("ci/app")) == sorted(
        [store.refs["new"][0], store.refs["old"][0], by_digest[0]]
    )


def test_what_the_collection_frees_is_what_no_remaining_manifest_reaches(store):
    """The plan's bytes: the index and its children's blobs; an upload nobody linked too.
    A manifest pushed by digest only is not garbage for retention."""
    store.image("other/y", "t", layers=[b"y-layer"])
    tags_dir = store.v2 / "repositories" / "other/y" / "_manifests" / "tags"
    (tags_dir / "t" / "current" / "link").unlink()
    stray = store.blob(b"an upload nobody linked")
    report = plan(store)
    amd, arm = store.refs["amd"], store.refs["arm"]
    older = size(store, store.refs["older"], amd[0], amd[1], *amd[2], arm[0], arm[1], *arm[2])
    assert report["bytes_unreferenced_before"] == size(store, stray)
    assert report["bytes_to_free"] == older + size(store, stray)


def test_a_host_without_settings_is_told_to_deploy_first(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "maintenance.json"
    monkeypatch.setattr(sys, "argv", ["registryctl", "retain", "--config", str(missing)])
    assert ctl.main() == 1
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["error"] == "%s does not exist: deploy the registry with site.yml first" % missing


def test_the_pull_record_keeps_a_tag_pulled_by_tag_or_by_its_digest(store, tmp_path):
    record = tmp_path / "pulls.json"
    record.write_text(
        json.dumps(
            {
                "since": NOW - 60 * DAY,
                "repositories": {
                    "ci/app": {
                        "tags": {"old": NOW - 2 * DAY},
                        "digests": {store.refs["older"]: NOW - 3 * DAY},
                    }
                },
            }
        )
    )
    rules = [{"repositories": "ci/*", "keep_last": 1, "keep_pulled_days": 7}]
    fs = ctl.FilesystemStore(str(store.v2))
    report = ctl.retention_plan(fs, rules, NOW, ctl.load_pulls(str(record)))
    (entry,) = report["repositories"]
    # latest (pushed 30 days ago, never pulled) goes; its image stays with old.
    assert [t["tag"] for t in entry["delete"]] == ["latest"]
    assert entry["delete"][0]["bytes"] == 0
    assert {k["tag"]: k["reason"] for k in entry["keep"]} == {
        "new": "among the newest 1",
        "old": "pulled within 7 days",  # by its tag
        "older": "pulled within 7 days",  # by its index's digest
    }


@pytest.mark.parametrize("damage", [None, "[not json", "[]", '{"ci/app": {}}'])
def test_without_a_pull_record_a_pulled_within_rule_deletes_nothing(store, tmp_path, damage):
    path = tmp_path / "pulls.json"
    if damage is not None:
        path.write_text(damage)
    pulls = ctl.load_pulls(str(path))
    assert pulls == {"since": None, "repositories": {}}
    rules = [{"repositories": "ci/*", "keep_last": 1, "keep_pulled_days": 7}]
    report = ctl.retention_plan(ctl.FilesystemStore(str(store.v2)), rules, NOW, pulls)
    assert report["repositories"][0]["delete"] == []
    assert report["tags_to_delete"] == 0


def test_records_younger_than_the_rule_keep_what_they_have_not_seen(store, tmp_path):
    path = tmp_path / "pulls.json"
    path.write_text(json.dumps({"since": NOW - 3 * DAY, "repositories": {}}))
    rules = [{"repositories": "ci/*", "keep_last": 1, "keep_pulled_days": 7}]
    report = ctl.retention_plan(
        ctl.FilesystemStore(str(store.v2)), rules, NOW, ctl.load_pulls(str(path))
    )
    (entry,) = report["repositories"]
    assert entry["delete"] == []
    assert {k["reason"] for k in entry["keep"]} == {
        "among the newest 1",
        "pulls recorded for 3.0 days, fewer than keep_pulled_days 7",
    }
