"""Secrets hygiene. Processes that hold keys keep them out of core files: kmsd and the kmsfs mount
daemon run with a core-size limit of 0 and are marked not dumpable (the latter is not visible
from outside to root, so only the limit is checked here). Their keys live in a locked heap
(OpenSSL's secure heap: mlock, MADV_DONTDUMP), which they announce, and which shows as locked
memory once a key is in it. After a session, no data key and no plaintext is anywhere at rest or
in a log."""
import json
import os

import pytest

from test_mount import PLAINTEXT_NAMES, foreground_mount, new_volume, wrapped_key


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
    with new_volume("kmsfs-hygiene-", PLAINTEXT_NAMES) as (cipher, mount_point), foreground_mount(cipher, mount_point) as daemon:
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
def test_no_key_or_plaintext_at_rest_or_in_logs(own_kmsd):
    """After a session of a volume on kmsd — files written, read, renamed, truncated — neither the
    plaintext nor any file's data key (unwrapped here through kmsd with the file's context) is in
    the backing directory (contents or xattrs), kmsd's store (with its WAL), its audit trail or
    log, or the mount daemon's log."""
    kmsd = own_kmsd  # stopped below, to read its store at rest
    client = kmsd.client()
    key = client.create_key(Description="hygiene")["KeyMetadata"]
    env = kmsd.client_environment()
    marker = b"KMSFS-PLAINTEXT-MARKER-" + os.urandom(16).hex().encode()
    payload = (marker + b"\n") * 3000
    init = kmsd.volume_arguments(key["Arn"])
    with new_volume("kmsfs-scan-", PLAINTEXT_NAMES, *init, env=env) as (cipher, mount_point):
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


def readable_memory(pid):
    """(mapping line, bytes) of every readable private mapping of a process (root reads any)."""
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if not fields[1].startswith("r") or fields[1][3] != "p" or end - start > 1 << 30:
                continue
            try:
                mem.seek(start)
                yield line.strip(), mem.read(end - start)
            except OSError:
                continue


@pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root")
def test_remote_data_keys_leave_no_base64_copy_in_the_mount_daemon(kmsd):
    """Data keys come from kmsd as base64 in JSON. The mount daemon decodes them straight into its
    locked key heap and wipes every buffer the answer passed through, so a scan of the whole
    daemon's memory, with files created (GenerateDataKey) and reopened after a remount (Decrypt),
    finds no data key in base64. A positive control: the scan finds what the test wrote."""
    import base64
    client = kmsd.client()
    key = client.create_key(Description="memory")["KeyMetadata"]
    env = kmsd.client_environment()
    with new_volume("kmsfs-memory-", PLAINTEXT_NAMES, *kmsd.volume_arguments(key["Arn"]), env=env) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=env):
            for n in range(20):
                with open(os.path.join(mount_point, "f%d" % n), "wb") as f:
                    f.write(b"x" * 100)
        with open(os.path.join(cipher, "kmsfs.conf")) as f:
            volume_id = json.load(f)["volumeID"]
        with foreground_mount(cipher, mount_point, env=env) as daemon:
            for n in range(20):
                with open(os.path.join(mount_point, "f%d" % n), "rb") as f:
                    assert f.read() == b"x" * 100
            encoded = []
            for n in range(20):
                file_id, _, blob = wrapped_key(os.path.join(cipher, "f%d" % n))
                context = {"kmsfs:volume": volume_id, "kmsfs:file": file_id.hex()}
                encoded.append(base64.b64encode(client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]))
            regions = list(readable_memory(daemon.pid))
            assert sum(len(data) for _, data in regions) > 1 << 20
            assert any(volume_id.encode() in data for _, data in regions)  # the scan sees the heap
            found = [where for where, data in regions for text in encoded if text in data]
            assert found == [], "base64 data keys in the daemon's memory, in: %s" % found[:3]


def test_kmsd_store_files_are_private_from_the_start(own_kmsd):
    """The store (sealed material, the audit trail) and its journal files are 0600 from their
    creation, whatever the umask (kmsd init runs with the default 022 here)."""
    own_kmsd.client().create_key(Description="journal")  # makes the WAL and shared-memory files
    names = [n for n in os.listdir(own_kmsd.directory) if n.startswith("keys.sqlite")]
    assert "keys.sqlite" in names and len(names) >= 2, names
    for name in names:
        mode = os.stat(os.path.join(own_kmsd.directory, name)).st_mode & 0o777
        assert mode & 0o077 == 0, "%s has mode %o" % (name, mode)
