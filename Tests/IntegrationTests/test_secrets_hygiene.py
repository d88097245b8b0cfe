"""Secrets hygiene. Processes that hold keys keep them out of core files: kmsd and the kmsfs mount
daemon run with a core-size limit of 0 and are marked not dumpable (the latter is not visible
from outside to root, so only the limit is checked here). Their keys live in a locked heap
(OpenSSL's secure heap: mlock, MADV_DONTDUMP), which they announce, and which shows as locked
memory once a key is in it. After a session, no data key and no plaintext is anywhere at rest or
in a log."""
import json
import os

import pytest

from test_mount import foreground_mount, new_volume, wrapped_key


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        line = next(l for l in f if l.startswith("Max core file size"))
    return line.split()[4:6]


def locked_kib(pid):
    """VmLck: memory the process holds locked (the key heap's pages once touched)."""
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmLck:")).split()[1])


def test_kmsd_writes_no_core_files_and_locks_its_keys(kmsd):
    assert core_limit(kmsd.process.pid) == ["0", "0"]
    kmsd.client().create_key(Description="locked")  # key material into the heap
    assert "kmsd: key memory: 4 MiB locked, out of core dumps" in open(kmsd.log_path).read()
    assert locked_kib(kmsd.process.pid) > 0


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")
def test_the_mount_daemon_writes_no_core_files_and_locks_its_keys():
    with new_volume("kmsfs-hygiene-") as (cipher, mount_point), foreground_mount(cipher, mount_point) as daemon:
        assert core_limit(daemon.pid) == ["0", "0"]
        with open(os.path.join(mount_point, "f"), "wb") as f:
            f.write(b"a data key into the heap")
        assert locked_kib(daemon.pid) > 0
    assert "key memory: 1024 KiB locked, out of core dumps" in daemon.read_log().decode()


def every_byte_under(directory):
    """Contents and extended attributes of every file below `directory`."""
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                yield path, f.read()
            for attribute in os.listxattr(path):
                yield path + " [" + attribute + "]", os.getxattr(path, attribute)


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")
def test_no_key_or_plaintext_at_rest_or_in_logs(kmsd):
    """After a session of a volume on kmsd — files written, read, renamed, truncated — neither the
    plaintext nor any file's data key (unwrapped here through kmsd with the file's context) is in
    the backing directory (contents or xattrs), kmsd's store (with its WAL), its audit trail or
    log, or the mount daemon's log."""
    client = kmsd.client()
    key = client.create_key(Description="hygiene")["KeyMetadata"]
    env = kmsd.client_environment()
    marker = b"KMSFS-PLAINTEXT-MARKER-" + os.urandom(16).hex().encode()
    payload = (marker + b"\n") * 3000
    init = kmsd.volume_arguments(key["Arn"])
    with new_volume("kmsfs-scan-", *init, env=env) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=env) as daemon:
            for name in ("one.txt", "two.txt"):
                with open(os.path.join(mount_point, name), "wb") as f:
                    f.write(payload)
            with open(os.path.join(mount_point, "one.txt"), "rb") as f:
                assert f.read() == payload
            os.rename(os.path.join(mount_point, "two.txt"), os.path.join(mount_point, "three.txt"))
            os.truncate(os.path.join(mount_point, "three.txt"), 70000)
        mount_log = daemon.read_log()
        with open(os.path.join(cipher, "kmsfs.conf")) as f:
            volume_id = json.load(f)["volumeID"]
        data_keys = []
        for name in ("one.txt", "three.txt"):
            file_id, _, blob = wrapped_key(os.path.join(cipher, name))
            context = {"kmsfs:volume": volume_id, "kmsfs:file": file_id.hex()}
            data_keys.append(client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"])
        kmsd.stop()
        places = list(every_byte_under(cipher)) + list(every_byte_under(kmsd.directory)) + [("mount log", mount_log)]
        assert len(places) > 5
        for where, data in places:
            assert marker not in data, "plaintext in " + where
            for data_key in data_keys:
                assert len(data_key) == 32 and data_key not in data, "a data key in " + where
