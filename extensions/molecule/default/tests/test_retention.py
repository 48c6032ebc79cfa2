"""Retention rules on a real registry: the test builds a history through the registry's API
(25 tags of one CI repository pushed over a day, tags sharing a digest, multi-arch indexes,
an image whose created date is 1970, release tags, nightly builds over ten days), sets each
tag's push time in the store, and checks that playbooks/retention.yml deletes exactly the
tags the rules in molecule.yml say, frees exactly their bytes, and loses nothing else.

The rules (molecule.yml, registry_servers):
  0. retention/ci/*: keep_last 5, keep_tags latest|v[0-9]+([.][0-9]+)*
  1. retention/nightly: keep_days 7
  2. retention/solo: keep_days 3 (its last tag stays)
  3. retention/pulled: keep_days 3, keep_pulled_days 5 (the receiver's records, which the
     test makes 30 days old so that the rule trusts them)
  retention/untouched matches no rule.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from registry_helpers import (
    MANIFEST_TYPES,
    assert_timer_scheduled,
    converge,
    http,
    manifest_digest,
    pull_by_digest,
    push_unique_image,
    recap,
)
from retention_helpers import (
    bytes_freed_by_deleting,
    image,
    latest_report,
    push_history,
    tags_of,
)

STORE = "/opt/registry/data/docker/registry/v2/repositories"
PULLS = "/var/lib/privreg-pulls/pulls.json"
HOUR, DAY = 3600, 86400


def history():
    """The images the test pushes, and each tag's age in seconds (now minus its push)."""
    images, ages = [], {}
    app = "retention/ci/app"
    # b01..b22, one an hour, b22 the newest; b03 and b20 share one image.
    for number in range(1, 23):
        if number == 3:
            continue  # pushed with b20
        tags = ["b%02d" % number] + (["b03"] if number == 20 else [])
        extra = {"created": "1970-01-01T00:00:00Z"} if number == 21 else {}
        images.append(image("b%02d" % number, app, tags, 40000 + number * 1000, **extra))
        for tag in tags:
            ages[(app, tag)] = (23 - number) * HOUR
    ages[(app, "b03")] = 20 * HOUR  # b03's own push, long before b20's
    # b05 is a multi-arch index (old: deleted with its children).
    images = [i for i in images if i["name"] != "b05"]
    images += [
        image("b05-amd64", app, [], 30000, arch="amd64"),
        image("b05-arm64", app, [], 31000, arch="arm64"),
        dict(name="b05", repository=app, tags=["b05"], children=["b05-amd64", "b05-arm64"]),
    ]
    # latest is the newest build's image; releases are old and protected.
    images[[i["name"] for i in images].index("b22")]["tags"].append("latest")
    ages[(app, "latest")] = 0
    images += [
        image("v1.0", app, ["v1.0"], 50000),
        image("v2.0-amd64", app, [], 51000, arch="amd64"),
        image("v2.0-arm64", app, [], 52000, arch="arm64"),
        dict(name="v2.0", repository=app, tags=["v2.0"], children=["v2.0-amd64", "v2.0-arm64"]),
    ]
    ages[(app, "v1.0")] = 30 * DAY
    ages[(app, "v2.0")] = 20 * DAY
    images.append(image("other", "retention/ci/other", ["o1", "o2", "o3"], 20000))
    for number, tag in enumerate(("o1", "o2", "o3"), start=1):
        ages[("retention/ci/other", tag)] = number * 40 * DAY
    # Nightly builds, n01 a day old ... n10 ten days old (an hour more, off the boundary).
    for number in range(1, 11):
        images.append(image("n%02d" % number, "retention/nightly", ["n%02d" % number], 25000))
        ages[("retention/nightly", "n%02d" % number)] = number * DAY + HOUR
    images.append(image("s1", "retention/solo", ["s1"], 26000))
    images.append(image("s2", "retention/solo", ["s2"], 27000))
    ages[("retention/solo", "s1")] = 10 * DAY
    ages[("retention/solo", "s2")] = 20 * DAY
    images.append(image("u1", "retention/untouched", ["u1"], 28000))
    ages[("retention/untouched", "u1")] = 100 * DAY
    # p1..p3 pushed 10 days ago: p1 is then pulled by its tag, p2 by its digest, p3 never;
    # p4 was pushed a day ago.
    for number, layer_bytes in enumerate((29000, 29500, 30500, 31500), start=1):
        name = "p%d" % number
        images.append(image(name, "retention/pulled", [name], layer_bytes))
        ages[("retention/pulled", name)] = (1 if number == 4 else 10) * DAY
    return images, ages


def expected_deletions():
    """From the rules, by hand: rule 0 keeps latest and the releases, then the 5 newest
    other tags (b18..b22) of retention/ci/app, and all three of ci/other; rule 1 keeps n01..n06
    (pushed under 7 days ago); rule 2 would delete both solo tags but keeps the newest, s1;
    rule 3 keeps p4 (pushed a day ago), p1 and p2 (pulled just now), and deletes p3."""
    app = "retention/ci/app"
    return (
        {(app, "b%02d" % n) for n in range(1, 18)}
        | {("retention/nightly", "n%02d" % n) for n in range(7, 11)}
        | {("retention/solo", "s2")}
        | {("retention/pulled", "p3")}
    )


@pytest.fixture(scope="module")
def built(server, client_a, registry, credentials):
    """The history with its push times, and no unreferenced blob beside it (collected after
    the pushes): what a collection frees afterwards is retention's."""
    images, ages = history()
    user, password = credentials("client-a")
    pushed = push_history(client_a, registry, user, password, images)
    collected = json.loads(server.check_output("registryctl run").splitlines()[-1])
    assert "error" not in collected, collected
    now = time.time()
    touches = "; ".join(
        "touch -m -d @%d %s/%s/_manifests/tags/%s/current/link" % (now - age, STORE, repo, tag)
        for (repo, tag), age in sorted(ages.items())
    )
    server.check_output("set -e; " + touches)
    tags = tags_of(images)
    return {"images": images, "pushed": pushed, "tags": tags}


def pull_record(server):
    return json.loads(server.check_output("cat %s", PULLS))


@pytest.fixture(scope="module")
def pulled(built, server, client_b, registry):
    """The receiver's records made 30 days old (stopped, edited, started: as if it had run
    for a month), then p1 pulled by its tag and p2 by its digest through Docker, as users
    pull. Waits until the receiver has written both (it writes every 10 s)."""
    server.check_output(
        "systemctl stop registry-pulls && python3 -c 'import json, sys, time; "
        'p = sys.argv[1]; r = json.load(open(p)); r["since"] = time.time() - 30 * 86400; '
        'json.dump(r, open(p, "w"))\' %s && systemctl start registry-pulls',
        PULLS,
    )
    client_b.check_output("docker pull %s/retention/pulled:p1", registry)
    p2 = built["pushed"]["p2"]["digest"]
    pull_by_digest(client_b, registry, "retention/pulled", p2)
    deadline = time.time() + 60
    while time.time() < deadline:
        seen = pull_record(server)["repositories"].get("retention/pulled", {})
        if "p1" in seen.get("tags", {}) and p2 in seen.get("digests", {}):
            return seen
        time.sleep(2)
    pytest.fail("the receiver did not record the pulls: %r" % pull_record(server))


def age(server, repository, tag, seconds):
    """Make the tag's last push `seconds` ago, as the store records it."""
    link = "%s/%s/_manifests/tags/%s/current/link" % (STORE, repository, tag)
    server.check_output("touch -m -d @%d %s" % (time.time() - seconds, link))


def retention_run(*args):
    return converge(*args, playbook="playbooks/retention.yml")


def planned(report):
    return {
        (entry["repository"], tag["tag"])
        for entry in report["repositories"]
        for tag in entry["delete"]
    }


@pytest.fixture(scope="module")
def dry_run(built, pulled, server):
    before = server.check_output("find %s -path '*/_manifests/tags/*' | sort", STORE)
    rc, output = retention_run("--check")
    assert rc == 0, output[-3000:]
    report = latest_report(server, dry_run=True)
    after = server.check_output("find %s -path '*/_manifests/tags/*' | sort", STORE)
    return {"report": report, "output": output, "unchanged": before == after}


def expected_bytes(built):
    """The bytes of every blob only deleted tags reach (the test's own arithmetic on the
    sizes it uploaded)."""
    return bytes_freed_by_deleting(built["pushed"], built["tags"], expected_deletions())


def test_a_dry_run_lists_exactly_the_tags_the_rules_delete_and_deletes_nothing(dry_run, built):
    assert planned(dry_run["report"]) == expected_deletions()
    assert dry_run["unchanged"], "a dry run changed the store's tags"
    assert dry_run["report"]["bytes_to_free"] == expected_bytes(built)
    # Why each goes is said, with the rule's index.
    reasons = {
        tag["tag"]: tag["reason"]
        for entry in dry_run["report"]["repositories"]
        for tag in entry["delete"]
    }
    assert reasons["b01"].startswith("rule 0: not among the newest 5")
    assert reasons["n07"].startswith("rule 1: pushed 7.0 days ago")
    assert reasons["p3"] == (
        "rule 3: pushed 10.0 days ago (keep_days 3), not pulled in the 30.0 days recorded"
    )
    kept = {
        (entry["repository"], tag["tag"]): tag["reason"]
        for entry in dry_run["report"]["repositories"]
        for tag in entry["keep"]
    }
    assert kept[("retention/pulled", "p1")] == "pulled within 5 days"
    assert kept[("retention/pulled", "p2")] == "pulled within 5 days"
    # The playbook's output names the tags per repository.
    assert "retention/nightly (rule 1): would delete n07, n08, n09, n10" in dry_run["output"]


@pytest.fixture(scope="module")
def real_run(dry_run, server):
    rc, output = retention_run()
    assert rc == 0, output[-3000:]
    return {"report": latest_report(server, dry_run=False), "output": output}


def test_the_run_deletes_exactly_the_planned_tags_and_gc_frees_their_bytes(
    real_run, built, dry_run
):
    report = real_run["report"]
    deleted = {
        (entry["repository"], tag) for entry in report["repositories"] for tag in entry["deleted"]
    }
    assert deleted == expected_deletions()
    assert report["tags_skipped"] == 0
    assert report["gc"]["bytes_freed"] == expected_bytes(built)
    assert report["gc"]["bytes_freed"] == dry_run["report"]["bytes_to_free"]
    assert 0 < report["frozen_seconds"] < 60
    assert recap(real_run["output"])["registry"]["changed"] >= 1


def test_every_kept_tag_pulls_and_every_deleted_tag_is_gone(
    real_run, built, client_b, registry, credentials
):
    deleted = expected_deletions()
    user, password = credentials("client-b")
    for (repository, tag), _name in sorted(built["tags"].items()):
        url = "https://%s/v2/%s/manifests/%s" % (registry, repository, tag)
        accept = {"Accept": MANIFEST_TYPES}
        status = http(client_b, url, user, password, "HEAD", accept)["status"]
        assert status == (404 if (repository, tag) in deleted else 200), (repository, tag, status)
    pushed = built["pushed"]
    # Pulled by digest, whole: the tag sharing b03's digest, the 1970 image, a release index.
    pull_by_digest(client_b, registry, "retention/ci/app", pushed["b20"]["digest"])
    pull_by_digest(client_b, registry, "retention/ci/app", pushed["b21"]["digest"])
    for platform in ("linux/amd64", "linux/arm64"):
        pull_by_digest(client_b, registry, "retention/ci/app", pushed["v2.0"]["digest"], platform)
    pull_by_digest(client_b, registry, "retention/solo", pushed["s1"]["digest"])


def test_a_second_run_changes_nothing(real_run, server):
    rc, output = retention_run()
    assert rc == 0, output[-3000:]
    assert recap(output)["registry"]["changed"] == 0
    report = latest_report(server, dry_run=False)
    assert report["tags_deleted"] == 0
    assert report["gc"] is None


def test_the_timer_is_scheduled_and_its_service_runs_the_rules(real_run, server):
    assert_timer_scheduled(server, "registry-retention.timer")
    before = latest_report(server, dry_run=False)
    server.check_output("systemctl start registry-retention.service")
    result = server.check_output("systemctl show registry-retention.service -p Result")
    assert result == "Result=success"
    after = latest_report(server, dry_run=False)
    assert after["started"] > before["started"]
    assert after["rules"] == before["rules"]  # the converged rules are the inventory's
    assert after["tags_deleted"] == 0


def test_tags_pushed_during_a_run_are_never_lost(
    real_run, server, client_a, client_b, registry, credentials
):
    """While a run deletes and collects, a loop pushes fresh images, each under a tag of its
    own and then as retention/nightly:loop (aged to 30 days first, so the rules would delete
    it): the last push of loop stays where it was pushed, and every image pushed pulls."""
    first = push_unique_image(client_a, registry + "/retention/nightly")
    client_a.check_output(
        "docker tag %s %s/retention/nightly:loop && docker push %s/retention/nightly:loop",
        first["reference"],
        registry,
        registry,
    )
    age(server, "retention/nightly", "loop", 30 * DAY)
    # Something for this run to delete and collect: n06, aged past the rule's 7 days.
    age(server, "retention/nightly", "n06", 9 * DAY)
    attempts, pushes, moved, stop = [0], [], [first], threading.Event()

    def loop():
        while not stop.is_set():
            attempts[0] += 1
            try:
                pushed = push_unique_image(client_a, registry + "/retention/nightly")
            except AssertionError:
                continue  # refused while read-only: attempts counts it
            pushes.append(pushed)
            attempts[0] += 1
            retag = client_a.run(
                "docker tag %s %s/retention/nightly:loop && docker push %s/retention/nightly:loop",
                pushed["reference"],
                registry,
                registry,
            )
            if retag.rc == 0:
                moved.append(pushed)

    pusher = threading.Thread(target=loop)
    pusher.start()
    try:
        time.sleep(2)
        rc, output = retention_run()
    finally:
        time.sleep(3)
        stop.set()
        pusher.join(timeout=120)
    assert rc == 0, output[-3000:]
    report = latest_report(server, dry_run=False)
    assert ("retention/nightly", "n06") in {
        (entry["repository"], tag) for entry in report["repositories"] for tag in entry["deleted"]
    }
    assert report["gc"]["blobs_deleted"] > 0
    assert len(pushes) >= 2, "the loop did not push during the run"
    assert len(moved) >= 2, "the loop did not move the tag during the run"
    print(
        "push attempts %d, pushes %d, loop moved %d times, read-only %.1f s"
        % (attempts[0], len(pushes), len(moved) - 1, report["frozen_seconds"])
    )
    user, password = credentials("client-b")
    assert (
        manifest_digest(client_b, registry, "retention/nightly", "loop", user, password)
        == moved[-1]["digest"]
    )
    for pushed in pushes:
        pull_by_digest(client_b, registry, "retention/nightly", pushed["digest"])


def test_a_broken_rule_is_refused_before_anything_changes(real_run, server, tmp_path):
    listing = "find %s -path '*/_manifests/tags/*' | sort; ls /var/lib/privreg/retention" % STORE
    before = server.check_output(listing)
    rules = tmp_path / "rules.yml"
    rules.write_text(
        json.dumps(
            {
                "registry_maintenance_retention_rules": [
                    {"repositories": "retention/*", "keep_last": 1},
                    {"repositories": "retention/nightly", "keep_days": -1},
                ]
            }
        )
    )
    rc, output = retention_run("-e", "@%s" % rules)
    assert rc != 0
    assert "registry_maintenance_retention_rules [1]: keep_days -1 is outside 0-36500" in output
    assert server.check_output(listing) == before


def test_the_pull_receiver_is_only_on_the_bridge_and_a_stopped_one_blocks_no_pull(
    real_run, server, client_b, registry, credentials
):
    """The receiver listens on the Docker bridge's address alone; with it stopped, pulls
    answer as fast as ever (the registry queues its events, it never waits for them)."""
    bridge = server.check_output(
        "docker network inspect bridge --format '{{ (index .IPAM.Config 0).Gateway }}'"
    )
    listening = server.check_output("ss -Hltn 'sport = :5008'").split()
    assert "%s:5008" % bridge in listening, listening
    assert not {"0.0.0.0:5008", "*:5008", "[::]:5008"} & set(listening), listening
    user, password = credentials("client-b")
    url = "https://%s/v2/retention/pulled/manifests/p1" % registry
    server.check_output("systemctl stop registry-pulls")
    try:
        timings = []
        for _attempt in range(10):
            started = time.time()
            answer = http(client_b, url, user, password, "GET", {"Accept": MANIFEST_TYPES})
            timings.append(time.time() - started)
            assert answer["status"] == 200, answer
    finally:
        server.check_output("systemctl start registry-pulls")
    assert len(timings) == 10
    print("manifest GETs with the receiver down: slowest %.2f s of 10" % max(timings))
    assert max(timings) < 2.0, timings
