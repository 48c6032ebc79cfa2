"""registryctl's backup stage and store verification (roles/host_control/files/registryctl.py).

A store is written here the way the registry's filesystem driver lays it out (blobs by
digest, repositories with revision, layer and tag links); the verification must find a
corrupt blob, a manifest or layer that is gone, and a layer not linked into its repository,
and pass a store that is whole. restic itself runs in the Molecule scenario s3.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.privreg.registry.tests.unit.roles.role_files import load_role_file

ctl = load_role_file("host_control", "registryctl")


class Store:
    """A store under root/docker/registry/v2, built blob by blob."""

    def __init__(self, root):
        self.root = root
        self.v2 = root / "docker" / "registry" / "v2"

    def blob(self, data):
        hexdigest = hashlib.sha256(data).hexdigest()
        path = self.v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest
        path.mkdir(parents=True, exist_ok=True)
        (path / "data").write_bytes(data)
        return "sha256:" + hexdigest

    def link(self, repository, kind, digest):
        hexdigest = digest.split(":", 1)[1]
        path = self.v2 / "repositories" / repository / kind / "sha256" / hexdigest
        path.mkdir(parents=True, exist_ok=True)
        (path / "link").write_text(digest)

    def image(self, repository, tag, layers=(b"layer",)):
        """An image manifest with a config and layers, linked and tagged."""
        config = self.blob(json.dumps({"architecture": "amd64", "tag": tag}).encode())
        parts = [self.blob(layer) for layer in layers]
        manifest = self.blob(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "config": {"digest": config, "size": 1},
                    "layers": [{"digest": d, "size": 1} for d in parts],
                }
            ).encode()
        )
        for digest in [config, *parts]:
            self.link(repository, "_layers", digest)
        self.link(repository, "_manifests/revisions", manifest)
        self.tag(repository, tag, manifest)
        return manifest, config, parts

    def tag(self, repository, tag, manifest):
        current = self.v2 / "repositories" / repository / "_manifests" / "tags" / tag / "current"
        current.mkdir(parents=True, exist_ok=True)
        (current / "link").write_text(manifest)

    def index(self, repository, tag, children):
        index = self.blob(
            json.dumps(
                {"schemaVersion": 2, "manifests": [{"digest": c} for c in children]}
            ).encode()
        )
        self.link(repository, "_manifests/revisions", index)
        self.tag(repository, tag, index)
        return index

    def remove_blob(self, digest):
        hexdigest = digest.split(":", 1)[1]
        (self.v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data").unlink()


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "data")


def test_a_whole_store_passes(store):
    store.image("team/app", "1", layers=(b"a", b"b"))
    store.image("team/app", "2", layers=(b"a", b"c"))  # a layer shared between tags
    amd, _c, _l = store.image("multi", "amd64-only", layers=(b"amd",))
    arm, _c, _l = store.image("multi", "arm64-only", layers=(b"arm",))
    store.index("multi", "latest", [amd, arm])
    report = ctl.verify_store(str(store.v2))
    assert report["ok"] is True
    assert report["tags"] == 5
    # Distinct blobs: 2 configs + 3 layers + 2 manifests (team/app), 2 configs + 2 layers +
    # 2 manifests (multi), 1 index.
    assert report["blobs"] == 7 + 6 + 1
    assert report["corrupt_blobs"] == []
    assert report["missing"] == []


def test_a_blob_whose_data_does_not_hash_to_its_name_is_corrupt(store):
    _m, _c, (layer,) = store.image("app", "1", layers=(b"original",))
    hexdigest = layer.split(":", 1)[1]
    (store.v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data").write_bytes(b"flipped")
    report = ctl.verify_store(str(store.v2))
    assert report["ok"] is False
    assert report["corrupt_blobs"] == [layer]


def test_a_tag_whose_layer_or_manifest_is_gone_is_missing(store):
    _m, _c, (layer,) = store.image("app", "1", layers=(b"gone",))
    manifest, _c, _l = store.image("app", "2", layers=(b"kept",))
    store.remove_blob(layer)
    store.remove_blob(manifest)
    report = ctl.verify_store(str(store.v2))
    assert report["ok"] is False
    assert sorted(report["missing"]) == sorted(
        ["app:1: blob %s" % layer, "app:2: manifest %s" % manifest]
    )


def test_an_index_whose_child_is_gone_is_missing(store):
    child, _c, _l = store.image("multi", "child", layers=(b"x",))
    store.index("multi", "latest", [child])
    store.remove_blob(child)
    report = ctl.verify_store(str(store.v2))
    assert "multi:latest: manifest %s" % child in report["missing"]


def test_a_layer_not_linked_into_its_repository_is_missing(store):
    """The registry serves a blob through a repository only with the repository's link."""
    _m, _c, (layer,) = store.image("app", "1", layers=(b"shared",))
    hexdigest = layer.split(":", 1)[1]
    os.unlink(store.v2 / "repositories" / "app" / "_layers" / "sha256" / hexdigest / "link")
    assert ctl.verify_store(str(store.v2))["missing"] == ["app:1: blob %s" % layer]


def test_the_stage_keeps_every_blob_a_staged_link_names(store, tmp_path):
    """Links first, then blobs as hard links: a blob deleted from the store after staging
    (a collection) stays in the stage with its data, and the stage verifies whole."""
    manifest, _config, (layer,) = store.image("app", "1", layers=(b"kept by the stage",))
    stage = tmp_path / "data" / ctl.STAGE
    ctl.stage_store(str(store.root), str(stage))
    store.remove_blob(layer)
    staged = stage / "docker" / "registry" / "v2"
    assert ctl.verify_store(str(staged))["ok"] is True
    hexdigest = manifest.split(":", 1)[1]
    original = store.v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
    copy = staged / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
    assert os.stat(original).st_ino == os.stat(copy).st_ino  # a link, not a copy of the data


def test_a_tag_moved_after_staging_keeps_its_staged_digest(store, tmp_path):
    """2.x rewrites a tag's link in place: the stage holds a copy of it, not the same file."""
    first, _config, _layers = store.image("app", "1", layers=(b"first",))
    stage = tmp_path / "data" / ctl.STAGE
    ctl.stage_store(str(store.root), str(stage))
    second, _config, _layers = store.image("app", "1", layers=(b"second",))  # same tag
    link = stage / "docker" / "registry" / "v2" / "repositories" / "app" / "_manifests"
    assert (link / "tags" / "1" / "current" / "link").read_text() == first != second
    assert ctl.verify_store(str(stage / "docker" / "registry" / "v2"))["ok"] is True


def test_uploads_in_progress_stay_out_of_the_stage(store, tmp_path):
    store.image("app", "1")
    upload = store.v2 / "repositories" / "app" / "_uploads" / "0d4e"
    upload.mkdir(parents=True)
    (upload / "data").write_bytes(b"half a layer")
    stage = tmp_path / "data" / ctl.STAGE
    ctl.stage_store(str(store.root), str(stage))
    staged = stage / "docker" / "registry" / "v2" / "repositories" / "app"
    assert sorted(os.listdir(staged)) == ["_layers", "_manifests"]


def test_a_link_that_never_holds_a_digest_fails_the_stage(store, tmp_path, monkeypatch):
    store.image("app", "1")
    current = store.v2 / "repositories" / "app" / "_manifests" / "tags" / "1" / "current"
    (current / "link").write_text("")  # as if truncated and never written again
    monkeypatch.setattr(ctl.time, "sleep", lambda seconds: None)
    with pytest.raises(ctl.ControlError, match="does not hold a digest"):
        ctl.stage_store(str(store.root), str(tmp_path / "data" / ctl.STAGE))


def test_staging_replaces_a_stage_an_interrupted_backup_left(store, tmp_path):
    stage = tmp_path / "data" / ctl.STAGE
    (stage / "docker" / "registry" / "v2" / "repositories" / "left-over").mkdir(parents=True)
    store.image("app", "1")
    ctl.stage_store(str(store.root), str(stage))
    repositories = stage / "docker" / "registry" / "v2" / "repositories"
    assert sorted(os.listdir(repositories)) == ["app"]


def test_restore_refuses_a_host_that_has_a_registry(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "docker" / "registry").mkdir(parents=True)
    monkeypatch.setattr(ctl, "docker_inspect", lambda container, template: None)
    monkeypatch.setattr(ctl, "load_secrets", lambda: pytest.fail("read the secrets"))
    with pytest.raises(ctl.ControlError, match="this host has a registry already .a store in"):
        ctl.restore("registry", str(data), "registry", "latest", False, "/nowhere")
    assert os.listdir(data / "docker") == ["registry"]


class FakeRestic:
    """restic's answers for a repository holding this host's two snapshots."""

    SNAPSHOTS = [
        {"id": "a" * 64, "short_id": "aaaaaaaa"},
        {"id": "b" * 64, "short_id": "bbbbbbbb"},
    ]

    def __init__(self):
        self.calls = []

    def __call__(self, env, *args, check=True):
        self.calls.append(args)
        stdout = json.dumps(self.SNAPSHOTS) if args[0] == "snapshots" else ""
        return type("Result", (), {"returncode": 0, "stdout": stdout, "stderr": ""})()


@pytest.fixture
def fake_restic(monkeypatch):
    fake = FakeRestic()
    monkeypatch.setattr(ctl, "restic", fake)
    monkeypatch.setattr(ctl, "docker_inspect", lambda container, template: None)
    monkeypatch.setattr(ctl, "load_secrets", lambda: {"password": "p"})
    return fake


def test_restore_takes_the_hosts_latest_snapshot(tmp_path, fake_restic):
    report = ctl.restore("registry", str(tmp_path / "data"), "registry", "latest", False, "/r")
    assert report["restored"] == "bbbbbbbb"
    assert ("snapshots", "--json", "--tag", "host=registry") in fake_restic.calls
    assert fake_restic.calls[-1][:2] == ("restore", "bbbbbbbb")


def test_restore_refuses_a_snapshot_of_another_host(tmp_path, fake_restic):
    with pytest.raises(ctl.ControlError, match="snapshot cccccccc is not one of registry's"):
        ctl.restore("registry", str(tmp_path / "data"), "registry", "cccccccc", False, "/r")
    assert not [call for call in fake_restic.calls if call[0] == "restore"]


def test_restore_takes_a_chosen_snapshot_of_this_host_by_either_id(tmp_path, fake_restic):
    for chosen in ("aaaaaaaa", "a" * 64):
        report = ctl.restore("registry", str(tmp_path / "data"), "registry", chosen, False, "/r")
        assert report["restored"] == chosen


def test_a_failed_backup_is_recorded_and_forgets_nothing(tmp_path, monkeypatch):
    """Any failure (here a bucket copy without the store's S3 settings) ends as a
    ControlError that names it, recorded for monitoring, before restic forgets anything."""
    fake = FakeRestic()
    monkeypatch.setattr(ctl, "restic", fake)
    monkeypatch.setattr(ctl, "load_secrets", lambda: {"password": "p"})
    monkeypatch.setattr(ctl, "LOCK_FILE", str(tmp_path / "lock" / "maintenance.lock"))
    state = tmp_path / "state" / "backup.json"
    settings = {
        "repository": "/r",
        "host": "registry",
        "paths": [],
        "data_dir": "",
        "bucket_copy": {"endpoint": "http://s3", "bucket": "copy", "region": "r"},
        "state_file": str(state),
    }
    with pytest.raises(ctl.ControlError, match="KeyError: 's3'"):
        ctl.backup(settings)
    record = json.loads(state.read_text())
    assert record["result"] == "failed"
    assert "KeyError" in record["error"]
    assert fake.calls == []  # no snapshot, so no forget
