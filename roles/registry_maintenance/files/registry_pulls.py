# Installed by privreg.registry (role registry_maintenance) as /usr/local/sbin/registry-pulls,
# with a #!/usr/bin/python3 line the role adds (the host's own Python, standard library only).
"""The registry's pull events, kept for retention rules that keep what was pulled recently.

The registry sends its events (notifications.endpoints in config.yml) here; this service
records, per repository, when each tag and each manifest digest was last pulled, in a JSON
state file that `registryctl retain` reads (keep_pulled_days), with the time the records
began: until they cover a rule's days, that rule deletes nothing for want of a pull.
Pushes, deletes and blob pulls are ignored: a tag counts as pulled when its manifest was
fetched, by tag or by digest.

A receiver that is down never blocks the registry: the registry queues events in memory
per endpoint and retries (3.x drops an event after maxretries; 2.x retries until the
receiver answers), and a restart of the registry loses what was queued. A lost pull can
make a rule delete a tag that was pulled: that is the cost, and why the records' start
counts. The state is written at most every FLUSH seconds and on SIGTERM, so a crash of
the receiver loses at most that window.

No token: the receiver listens only on the Docker bridge's address on the host, and an
event it should not have got can only make a rule keep a tag, never delete one. Entries
are capped (MAX_ENTRIES, oldest dropped) so a flood of invented names cannot fill the disk.

Arguments: --address, --port, --state-file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLUSH = 10  # seconds between writes of a changed state
MAX_BODY = 4 * 1024 * 1024  # an envelope is a batch of events; more is not the registry
MAX_ENTRIES = 200000  # tags and digests over all repositories: about 20 MB of state
MANIFEST_TYPES = frozenset(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def _epoch(stamp):
    """An RFC 3339 time of an event (nanoseconds cut to microseconds), or None."""
    if not isinstance(stamp, str):
        return None
    text = stamp.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = "%s.%s%s" % (head, digits[:6], zone)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


class PullRecord:
    """{"since": time, "repositories": {repository: {"tags": {tag: time}, "digests":
    {digest: time}}}}: when the records began, and the latest pull of each."""

    def __init__(self, path, now=None):
        self.path = path
        self.lock = threading.Lock()
        self.dirty = False
        try:
            with open(path) as handle:
                state = json.load(handle)
        except (FileNotFoundError, ValueError):
            state = None
        if not (
            isinstance(state, dict)
            and isinstance(state.get("since"), (int, float))
            and isinstance(state.get("repositories"), dict)
        ):
            # A new or damaged record begins now: no rule trusts it for its days yet.
            state = {"since": now if now is not None else time.time(), "repositories": {}}
            self.dirty = True
        self.state = state
        self.entries = sum(
            len(entry.get("tags", {})) + len(entry.get("digests", {}))
            for entry in state["repositories"].values()
        )

    def record(self, envelope, now=None):
        """Count the manifest pulls of an envelope; the number counted."""
        counted = 0
        events = envelope.get("events") if isinstance(envelope, dict) else None
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, dict) or event.get("action") != "pull":
                continue
            target = event.get("target")
            if not isinstance(target, dict) or target.get("mediaType") not in MANIFEST_TYPES:
                continue
            repository = target.get("repository")
            if not isinstance(repository, str) or not repository:
                continue
            when = _epoch(event.get("timestamp"))
            if when is None:
                when = now if now is not None else time.time()
            with self.lock:
                repositories = self.state["repositories"]
                entry = repositories.setdefault(repository, {"tags": {}, "digests": {}})
                for kind, key in (("tags", target.get("tag")), ("digests", target.get("digest"))):
                    if isinstance(key, str) and key and when > entry[kind].get(key, 0):
                        self.entries += key not in entry[kind]
                        entry[kind][key] = when
                if self.entries > MAX_ENTRIES:
                    self._drop_oldest(self.entries - MAX_ENTRIES + MAX_ENTRIES // 10)
                self.dirty = True
            counted += 1
        return counted

    def _drop_oldest(self, count):
        everything = sorted(
            (when, name, kind, key)
            for name, entry in self.state["repositories"].items()
            for kind in ("tags", "digests")
            for key, when in entry[kind].items()
        )
        for _when, name, kind, key in everything[:count]:
            del self.state["repositories"][name][kind][key]
            if not any(self.state["repositories"][name].values()):
                del self.state["repositories"][name]
        self.entries -= count

    def flush(self):
        with self.lock:
            if not self.dirty:
                return False
            data = json.dumps(self.state, sort_keys=True).encode()
            self.dirty = False
        directory = os.path.dirname(self.path) or "."
        fd, temporary = tempfile.mkstemp(prefix=".pulls.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with self.lock:
                self.dirty = True
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return True


def handler_for(record):
    class Handler(BaseHTTPRequestHandler):
        server_version = "registry-pulls"

        def log_message(self, fmt, *args):  # the journal gets errors only
            pass

        def _answer(self, status, text=""):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._answer(200 if self.path == "/health" else 404)

        def do_POST(self):
            if self.path != "/events":
                self._answer(404)
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._answer(411)
                return
            if not 0 <= length <= MAX_BODY:
                self._answer(413)
                return
            try:
                envelope = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, "not JSON")
                return
            self._answer(200, str(record.record(envelope)))

    return Handler


def serve(settings):
    record = PullRecord(settings["state_file"])
    record.flush()  # a new record's start is on disk before the first event
    server = ThreadingHTTPServer((settings["address"], int(settings["port"])), handler_for(record))
    server.daemon_threads = True
    stop = threading.Event()

    def flusher():
        while not stop.wait(FLUSH):
            record.flush()

    def terminate(_signum, _frame):
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    thread = threading.Thread(target=flusher, daemon=True)
    thread.start()
    try:
        server.serve_forever()
    finally:
        stop.set()
        record.flush()
        server.server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", required=True)
    args = parser.parse_args(argv)
    serve({"address": args.address, "port": args.port, "state_file": args.state_file})
    return 0


if __name__ == "__main__":
    sys.exit(main())
