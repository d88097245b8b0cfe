"""A mount's Prometheus metrics, scraped over its Unix socket and loopback port and read by
Python's prometheus_client parser; `kmsfs status`; an endpoint that garbage and stalled
clients do not break."""
import http.client
import os
import socket
import stat
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_adversaries import NOBODY, as_user
from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, new_volume


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def scrape(connection):
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.read().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples, name, **labels):
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items()))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_metrics_over_a_unix_socket_and_kmsfs_status():
    with new_volume("kmsfs-metrics-", PLAINTEXT_NAMES) as (cipher, mount_point):
        path = os.path.join(os.path.dirname(cipher), "metrics.sock")
        with foreground_mount(cipher, mount_point, extra=("-o", "metrics=unix:" + path)):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            for index in range(20):
                with open(os.path.join(mount_point, "f%d" % index), "wb") as f:
                    f.write(b"x" * 1000)
            for index in range(20):
                with open(os.path.join(mount_point, "f%d" % index), "rb") as f:
                    assert f.read() == b"x" * 1000
            # One chunk damaged in the backing store: a read fails, and is counted.
            with open(os.path.join(cipher, "f3"), "r+b") as f:
                f.seek(40)
                byte = f.read(1)
                f.seek(40)
                f.write(bytes([byte[0] ^ 1]))
            subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=False)
            with pytest.raises(OSError):
                with open(os.path.join(mount_point, "f3"), "rb") as f:
                    f.read()

            samples = scrape(UnixHTTPConnection(path))
            assert total(samples, "kmsfs_fuse_requests_total", operation="create", outcome="ok") == 20
            assert total(samples, "kmsfs_kms_requests_total", operation="GenerateDataKey", outcome="ok") >= 20
            assert total(samples, "kmsfs_kms_request_duration_seconds_count", operation="GenerateDataKey") >= 20
            assert total(samples, "kmsfs_plaintext_bytes_total", direction="write") == 20_000
            assert total(samples, "kmsfs_plaintext_bytes_total", direction="read") >= 19_000
            assert total(samples, "kmsfs_integrity_failures_total") >= 1
            assert ("kmsfs_data_key_cache_entries", ()) in samples

            # Garbage and a stalled client: answered or dropped; the next scrape works.
            with socket.socket(socket.AF_UNIX) as garbage:
                garbage.connect(path)
                garbage.sendall(b"\x00\xffNOT HTTP\r\n\r\n")
                assert b"404" in garbage.recv(4096)
            stalled = socket.socket(socket.AF_UNIX)
            stalled.connect(path)
            started = time.time()
            assert total(scrape(UnixHTTPConnection(path)), "kmsfs_fuse_requests_total", operation="create") == 20
            assert time.time() - started < 5
            stalled.close()

            status = subprocess.run([KMSFS, "status", mount_point], capture_output=True, text=True, check=True).stdout
            assert "create" in status and "20 ok" in status and "GenerateDataKey" in status
            assert "integrity failures (EIO): " in status and "integrity failures (EIO): 0" not in status
        assert not os.path.exists(path)


def test_metrics_on_a_loopback_port_only():
    with new_volume("kmsfs-metrics-tcp-", PLAINTEXT_NAMES) as (cipher, mount_point):
        port = free_port()
        with foreground_mount(cipher, mount_point, extra=("-o", "metrics=127.0.0.1:%d" % port)):
            with open(os.path.join(mount_point, "a"), "w") as f:
                f.write("a")
            # A request is counted once answered: the count may trail the caller by a moment.
            deadline = time.monotonic() + 5
            while True:
                samples = scrape(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
                created = total(samples, "kmsfs_fuse_requests_total", operation="create", outcome="ok")
                if created == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert created == 1
        refused = subprocess.run([KMSFS, "mount", "-f", cipher, mount_point, "-o", "metrics=0.0.0.0:%d" % port],
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0 and "loopback only" in refused.stderr


def test_other_users_of_a_shared_mount_do_not_read_its_metrics():
    with new_volume("kmsfs-metrics-shared-", PLAINTEXT_NAMES) as (cipher, mount_point):
        os.chmod(os.path.dirname(cipher), 0o755)
        with foreground_mount(cipher, mount_point, extra=("-o", "allow_other")):
            os.chmod(mount_point, 0o755)
            refused = as_user(NOBODY, NOBODY, "%s status %s" % (KMSFS, mount_point))
            assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stdout + refused.stderr
            assert "FUSE requests" in subprocess.run([KMSFS, "status", mount_point], capture_output=True, text=True, check=True).stdout
