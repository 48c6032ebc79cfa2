"""The pull-event receiver (roles/registry_maintenance/files/registry_pulls.py), served for
real on loopback: what it counts, what it refuses, and the state it leaves."""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request

import pytest

from ansible_collections.privreg.registry.tests.unit.roles.role_files import load_role_file

pulls = load_role_file("registry_maintenance", "registry_pulls")
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def event(action="pull", tag="v1", digest="sha256:" + "a" * 64, media_type=MANIFEST, when=None):
    target = {"repository": "team/app", "mediaType": media_type, "digest": digest}
    if tag:
        target["tag"] = tag
    return {
        "action": action,
        "target": target,
        "timestamp": when or "2026-12-01T10:00:00.123456789Z",
    }


@pytest.fixture
def receiver(tmp_path):
    state = tmp_path / "pulls.json"
    record = pulls.PullRecord(str(state), now=1000.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = pulls.ThreadingHTTPServer(("127.0.0.1", port), pulls.handler_for(record))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": "http://127.0.0.1:%d" % port, "record": record, "state": state}
    server.shutdown()
    server.server_close()


def post(receiver, body, path="/events"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    # Loopback http only: the receiver this test started.
    request = urllib.request.Request(receiver["url"] + path, data=data, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_manifest_pulls_are_recorded_by_tag_and_digest_and_written_privately(receiver):
    envelope = {
        "events": [
            event(),
            event(tag=None, digest="sha256:" + "b" * 64, when="2026-12-02T00:00:00Z"),
            event(action="push", tag="v2"),
            event(media_type="application/octet-stream", tag=None, digest="sha256:" + "c" * 64),
        ]
    }
    assert post(receiver, envelope) == (200, "2")
    assert receiver["record"].flush()
    state = json.loads(receiver["state"].read_text())
    # 2026-12-01T10:00:00.123456Z and 2026-12-02T00:00:00Z as seconds since the epoch.
    assert state == {
        "since": 1000.0,
        "repositories": {
            "team/app": {
                "tags": {"v1": 1796119200.123456},
                "digests": {
                    "sha256:" + "a" * 64: 1796119200.123456,
                    "sha256:" + "b" * 64: 1796169600.0,
                },
            }
        },
    }
    assert oct(os.stat(receiver["state"]).st_mode & 0o777) == "0o600"
    assert not receiver["record"].flush()  # nothing new: nothing written


def test_an_older_event_arriving_late_does_not_move_a_pull_back(receiver):
    post(receiver, {"events": [event(when="2026-12-05T00:00:00Z")]})
    post(receiver, {"events": [event(when="2026-12-01T00:00:00Z")]})
    assert receiver["record"].state["repositories"]["team/app"]["tags"]["v1"] == 1796428800.0


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/other", {"events": [event()]}, 404),
        ("/events", b"not json", 400),
    ],
)
def test_what_is_not_an_envelope_is_refused_and_counts_nothing(receiver, path, body, status):
    assert post(receiver, body, path=path)[0] == status
    assert receiver["record"].state["repositories"] == {}


def test_garbage_inside_an_envelope_is_skipped(receiver):
    envelope = {"events": ["x", {"action": "pull"}, {"action": "pull", "target": []}, event()]}
    assert post(receiver, envelope) == (200, "1")


def test_the_state_of_an_earlier_run_is_read_back_with_its_start(tmp_path):
    path = tmp_path / "pulls.json"
    earlier = {"since": 3.0, "repositories": {"r": {"tags": {"t": 5.0}, "digests": {}}}}
    path.write_text(json.dumps(earlier))
    record = pulls.PullRecord(str(path), now=99.0)
    record.record({"events": [event(when="1970-01-01T00:00:04Z")]})
    assert record.state["since"] == 3.0
    assert record.state["repositories"]["r"]["tags"]["t"] == 5.0
    assert record.state["repositories"]["team/app"]["tags"]["v1"] == 4.0


@pytest.mark.parametrize("damage", ["[not json", "[]", '{"r": {"tags": {}, "digests": {}}}'])
def test_a_damaged_or_old_format_record_starts_again_from_now(tmp_path, damage):
    path = tmp_path / "pulls.json"
    path.write_text(damage)
    record = pulls.PullRecord(str(path), now=77.0)
    # Starting again from now is what keeps a rule from trusting pulls it never saw.
    assert record.state == {"since": 77.0, "repositories": {}}
    assert record.flush()


def test_a_flood_of_names_is_capped_and_the_oldest_go_first(tmp_path, monkeypatch):
    monkeypatch.setattr(pulls, "MAX_ENTRIES", 20)
    record = pulls.PullRecord(str(tmp_path / "pulls.json"), now=0.0)
    for second in range(30):
        stamp = "1970-01-01T00:00:%02dZ" % second
        # One tag and one digest each: two entries per event.
        record.record({"events": [event(tag="t%d" % second, digest="d%d" % second, when=stamp)]})
    tags = record.state["repositories"]["team/app"]["tags"]
    assert record.entries <= 20
    assert record.entries == sum(len(e) for e in record.state["repositories"]["team/app"].values())
    assert "t29" in tags  # the newest stays
    assert "t0" not in tags  # the oldest went
