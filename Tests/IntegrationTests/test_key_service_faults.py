"""A mounted volume whose key service misbehaves.

- kmsd (over its Unix socket) goes away and comes back: files whose keys are cached keep working,
  reads and writes alike; opening a file whose key is not cached fails with EIO and a log line,
  within seconds; after kmsd restarts the same open works, and nothing written during the outage
  is lost.
- kmsd behind a proxy that slows every answer, hangs, or answers ThrottlingException: slow
  answers only slow the opens that need the service; a hang fails such an open with EIO after
  the client's attempts (4 × 5 s) while cached files keep working meanwhile; brief throttling is
  retried away; lasting throttling is EIO with a log line naming it; all recover."""
import errno
import http.client
import http.server
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import KMSD, REGION, stop_process
from test_mount import KMSFS, foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")


def serve(kmsd):
    """kmsd again on the same store and socket (the fixture's process was stopped)."""
    log = open(kmsd.log_path, "a")
    process = subprocess.Popen([KMSD, "serve", "--store", kmsd.store, "--listen", "unix://%s?mode=0600" % kmsd.socket_path],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while open(kmsd.log_path).read().count("kmsd: ready") < 2:
        assert process.poll() is None and time.time() < deadline, open(kmsd.log_path).read()
        time.sleep(0.05)
    return process, log


def test_outage_and_recovery(own_kmsd):
    kmsd = own_kmsd
    client = kmsd.client()
    key = client.create_key(Description="faults")["KeyMetadata"]
    env = kmsd.client_environment()
    init = kmsd.volume_arguments(key["Arn"])
    payloads = {name: os.urandom(40000) for name in ("a", "b", "c")}
    restarted = None
    with new_volume("kmsfs-faults-", *init, env=env) as (cipher, mount_point):
        try:
            with foreground_mount(cipher, mount_point, env=env):
                for name, data in payloads.items():
                    with open(os.path.join(mount_point, name), "wb") as f:
                        f.write(data)
            with foreground_mount(cipher, mount_point, env=env) as daemon:
                path = lambda name: os.path.join(mount_point, name)
                with open(path("a"), "rb") as f:  # a's key is now cached
                    assert f.read() == payloads["a"]
                held = open(path("b"), "r+b")  # b stays open across the outage
                kmsd.stop()
                with open(path("a"), "rb") as f:
                    assert f.read() == payloads["a"]
                held.seek(100)
                held.write(b"written during the outage")
                held.flush()
                os.fsync(held.fileno())
                held.seek(0)
                expected_b = payloads["b"][:100] + b"written during the outage" + payloads["b"][125:]
                assert held.read() == expected_b
                started = time.time()
                with pytest.raises(OSError) as excinfo:
                    open(path("c"), "rb").read()
                assert excinfo.value.errno == errno.EIO and time.time() - started < 30
                restarted = serve(kmsd)
                with open(path("c"), "rb") as f:
                    assert f.read() == payloads["c"]
                held.close()
            assert "KMS unreachable" in daemon.read_log().decode()
            with foreground_mount(cipher, mount_point, env=env):
                for name, data in (("a", payloads["a"]), ("b", expected_b), ("c", payloads["c"])):
                    with open(os.path.join(mount_point, name), "rb") as f:
                        assert f.read() == data
        finally:
            if restarted is not None:
                process, log = restarted
                stop_process(process)
                log.close()


class FaultyProxy:
    """An HTTP proxy in front of kmsd's TCP endpoint that can delay every request, hang, or
    answer ThrottlingException; it counts what it answered. Stopped when the block ends."""

    def __init__(self, upstream_port):
        proxy = self
        self.delay, self.throttle, self.answered, self.throttled = 0.0, 0, 0, 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends pending delays at once

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    delay, throttle = proxy.delay, proxy.throttle > 0
                    if throttle:
                        proxy.throttle -= 1
                        proxy.throttled += 1
                if delay:
                    proxy.release.wait(delay)
                if throttle:
                    status, payload = 400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                    content_type = "application/x-amz-json-1.1"
                else:
                    upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                    upstream.request("POST", self.path, body=body, headers=dict(self.headers.items()))
                    response = upstream.getresponse()
                    status, payload = response.status, response.read()
                    content_type = response.getheader("Content-Type", "application/x-amz-json-1.1")
                    upstream.close()
                with proxy.lock:
                    proxy.answered += 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, delay=0.0, throttle=0):
        with self.lock:
            self.delay, self.throttle = delay, throttle
        if not delay:
            self.release.set()
            self.release = threading.Event()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.set()
        self.server.shutdown()
        self.server.server_close()


def timed_read(path):
    started = time.time()
    with open(path, "rb") as f:
        data = f.read()
    return data, time.time() - started


def test_slow_hanging_and_throttling_key_service(kmsd):
    client = kmsd.client()
    key = client.create_key(Description="slow")["KeyMetadata"]
    env = kmsd.client_environment()
    payloads = {name: os.urandom(30000) for name in "abcdefg"}
    with FaultyProxy(kmsd.port) as proxy, \
            new_volume("kmsfs-slow-", "--kms-endpoint", proxy.url, "--region", REGION, "--kms-key", key["Arn"], env=env) as (cipher, mount_point):
        path = lambda name: os.path.join(mount_point, name)
        with foreground_mount(cipher, mount_point, env=env):
            for name, data in payloads.items():
                with open(path(name), "wb") as f:
                    f.write(data)
        with foreground_mount(cipher, mount_point, env=env) as daemon:
            assert timed_read(path("a"))[0] == payloads["a"]  # a's key is now cached
            held = open(path("g"), "r+b")  # and g's, held open throughout

            # Slow: every answer 3 s late. Opens that need the service wait; cached ones do not.
            proxy.set(delay=3)
            data, elapsed = timed_read(path("b"))
            assert data == payloads["b"] and elapsed >= 3
            data, elapsed = timed_read(path("a"))
            assert data == payloads["a"] and elapsed < 2  # well under one delayed answer

            # Hung: no answer within the client's per-attempt timeout. The open is EIO after the
            # client's attempts; meanwhile cached files are read and written without waiting.
            proxy.set(delay=600)
            outcome = {}

            def open_uncached():
                started = time.time()
                try:
                    open(path("c"), "rb").read()
                    outcome["result"] = "read"
                except OSError as error:
                    outcome["result"] = error.errno
                outcome["elapsed"] = time.time() - started

            waiter = threading.Thread(target=open_uncached)
            waiter.start()
            time.sleep(1)
            data, elapsed = timed_read(path("a"))
            assert data == payloads["a"] and elapsed < 5  # far less than the 20 s a hung call takes
            held.seek(10)
            held.write(b"written while the service hung")
            held.flush()
            os.fsync(held.fileno())
            waiter.join(timeout=60)
            assert not waiter.is_alive()
            assert outcome["result"] == errno.EIO and 10 <= outcome["elapsed"] < 40, outcome

            # Throttled briefly: the client retries, the open works.
            proxy.set(throttle=2)
            before = proxy.throttled
            assert timed_read(path("d"))[0] == payloads["d"]
            assert proxy.throttled - before == 2

            # Throttled for good: EIO, and the log names the throttling.
            proxy.set(throttle=1000)
            with pytest.raises(OSError) as excinfo:
                open(path("e"), "rb").read()
            assert excinfo.value.errno == errno.EIO

            # Recovered: everything opens, c and e included.
            proxy.set()
            for name in "cef":
                assert timed_read(path(name))[0] == payloads[name]
            held.close()
        log = daemon.read_log().decode()
        assert "ThrottlingException" in log and "KMS unreachable" in log
        expected_g = payloads["g"][:10] + b"written while the service hung" + payloads["g"][40:]
        with foreground_mount(cipher, mount_point, env=env):
            for name, data in dict(payloads, g=expected_g).items():
                assert timed_read(path(name))[0] == data


def test_a_mount_fails_over_to_the_next_endpoint(kmsd):
    """`-o kms_endpoint=A;B` (semicolons: mount options split on commas): with A refusing
    connections, the volume is made and mounted on B, and every file opens through it."""
    dead = "unix:///nonexistent/kmsd.sock"
    live = "unix://" + kmsd.socket_path
    key = kmsd.client().create_key(Description="failover")["KeyMetadata"]["Arn"]
    env = kmsd.client_environment()
    with new_volume("kmsfs-failover-", "--kms-endpoint", dead + "," + live, "--region", REGION, "--kms-key", key, env=env) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=env, extra=("-o", "kms_endpoint=%s;%s" % (dead, live))):
            for index in range(20):
                with open(os.path.join(mount_point, "f%d" % index), "w") as f:
                    f.write("payload %d" % index)
        with foreground_mount(cipher, mount_point, env=env, extra=("-o", "kms_endpoint=%s;%s" % (dead, live))):
            assert [open(os.path.join(mount_point, "f%d" % i)).read() for i in range(20)] == ["payload %d" % i for i in range(20)]
        # Only dead endpoints: the mount fails, naming them.
        failed = subprocess.run([KMSFS,
                                 "mount", "-f", cipher, mount_point, "-o", "kms_endpoint=%s;unix:///nonexistent/other.sock" % dead],
                                capture_output=True, text=True, env=env, timeout=120)
        assert failed.returncode != 0 and "nonexistent" in failed.stdout + failed.stderr
