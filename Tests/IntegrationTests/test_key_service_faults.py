"""A mounted volume whose key service (kmsd over its Unix socket) goes away and comes back: files
whose keys are cached keep working, reads and writes alike; opening a file whose key is not
cached fails with EIO and a log line, within seconds; after kmsd restarts the same open works,
and nothing written during the outage is lost."""
import errno
import os
import signal
import subprocess
import time

import pytest

from conftest import KMSD
from test_mount import foreground_mount, new_volume

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


def test_outage_and_recovery(kmsd):
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
            assert "KMS unreachable" in daemon.stderr.read().decode()
            with foreground_mount(cipher, mount_point, env=env):
                for name, data in (("a", payloads["a"]), ("b", expected_b), ("c", payloads["c"])):
                    with open(os.path.join(mount_point, name), "rb") as f:
                        assert f.read() == data
        finally:
            if restarted is not None:
                process, log = restarted
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                log.close()
