"""What the mount does when its KMS key changes state at kmsd (over the Unix socket): disabled →
opens of files whose keys are not cached fail with EACCES and a log line, enabled again → they
work; pending deletion → refused, and each attempt is in kmsd's audit trail as a use of a key
pending deletion. Files and keys are never lost along the way."""
import errno
import json
import os
import re
import subprocess

import pytest

from conftest import KMSD
from test_mount import foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_disable_enable_and_pending_deletion(kmsd):
    client = kmsd.client()
    key = client.create_key(Description="state test")["KeyMetadata"]
    env = kmsd.client_environment()
    init = kmsd.volume_arguments(key["Arn"])
    with new_volume("kmsfs-states-", *init, env=env) as (cipher, mount_point):
        payloads = {name: os.urandom(20000) for name in ("a", "b", "c")}
        with foreground_mount(cipher, mount_point, env=env):
            for name, data in payloads.items():
                with open(os.path.join(mount_point, name), "wb") as f:
                    f.write(data)

        # A fresh mount has no cached keys: every open asks kmsd. (A mount verifies its
        # configuration with the volume's key, so the key is disabled once it is up.)
        with foreground_mount(cipher, mount_point, env=env) as daemon:
            client.disable_key(KeyId=key["KeyId"])
            with pytest.raises(OSError) as excinfo:
                read(os.path.join(mount_point, "a"))
            assert excinfo.value.errno == errno.EACCES
            client.enable_key(KeyId=key["KeyId"])
            assert read(os.path.join(mount_point, "a")) == payloads["a"]
        log = daemon.read_log().decode()
        assert "Disabled" in log and key["KeyId"] in log

        with foreground_mount(cipher, mount_point, env=env):
            client.disable_key(KeyId=key["KeyId"])
            client.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
            for name in ("b", "c"):
                with pytest.raises(OSError) as excinfo:
                    read(os.path.join(mount_point, name))
                assert excinfo.value.errno == errno.EACCES
        client.cancel_key_deletion(KeyId=key["KeyId"])
        client.enable_key(KeyId=key["KeyId"])
        with foreground_mount(cipher, mount_point, env=env):
            for name, data in payloads.items():
                assert read(os.path.join(mount_point, name)) == data

    # kmsd warned in its log, counting the uses.
    log = open(kmsd.log_path).read()
    counts = [int(n) for n in re.findall(r"WARNING: Decrypt by .* pending deletion \(use #(\d+) since start", log)]
    assert counts and max(counts) >= 2
    kmsd.stop()
    trail = subprocess.run([KMSD, "audit", "tail", "--store", kmsd.store, "--key", key["Arn"]],
                           check=True, capture_output=True, text=True).stdout
    records = [json.loads(line) for line in trail.splitlines() if line.startswith("{")]
    pending = [r for r in records if r.get("note") == "use of a key pending deletion" and r["operation"] == "Decrypt"]
    assert len(pending) >= 2 and all(r.get("errorCode") == "KMSInvalidStateException" for r in pending)
