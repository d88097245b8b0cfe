"""Bucket keys through a real mount on a real kmsd: one GenerateDataKey per bucket, not per
file; a key attribute small enough for an ext4 inode; buckets hidden from the mount, re-wrapped
offline, and every tampering with them or with the attributes that name them an error."""
import json
import os
import stat
import subprocess
import threading

import pytest

from conftest import KMSD
from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, new_volume
from test_rewrap import kmsfs

FILES = 120


def audit(kmsd, key):
    trail = subprocess.run([KMSD, "audit", "tail", "--store", kmsd.store, "--key", key, "--limit", "10000"],
                           check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in trail.splitlines() if line.startswith("{")]


@pytest.fixture()
def bucket_volume(own_kmsd):
    client = own_kmsd.client()
    first = client.create_key(Description="bucket source")["KeyMetadata"]["Arn"]
    second = client.create_key(Description="bucket destination")["KeyMetadata"]["Arn"]
    env = own_kmsd.client_environment()
    with new_volume("kmsfs-buckets-", PLAINTEXT_NAMES, *own_kmsd.volume_arguments(first), "--bucket-keys", "--bucket-key-max-files", "50",
                    env=env) as (cipher, mount_point):
        yield own_kmsd, env, cipher, mount_point, first, second


def test_bucket_keys_end_to_end(bucket_volume):
    kmsd, env, cipher, mount_point, first, second = bucket_volume
    with open(os.path.join(cipher, "kmsfs.conf")) as f:
        config = json.load(f)
    assert config["formatVersion"] == 4 and config["bucketKeys"] == {"maxAge": 3600, "maxFiles": 50}
    with foreground_mount(cipher, mount_point, env=env):
        for index in range(FILES):
            with open(os.path.join(mount_point, "f%03d" % index), "wb") as f:
                f.write(b"%d" % index if index else b"x")
        # The volume's own files are not the user's.
        assert "kmsfs.buckets" not in os.listdir(mount_point)
        assert not os.path.exists(os.path.join(mount_point, "kmsfs.buckets"))
        with pytest.raises(OSError):
            os.mkdir(os.path.join(mount_point, "kmsfs.buckets"))
        info = subprocess.run([KMSFS, "info", os.path.join(mount_point, "f000")], capture_output=True, text=True, check=True).stdout
        assert "bucket key: " in info and "kmsfs:bucket=" in info and first in info
    buckets = sorted(os.listdir(os.path.join(cipher, "kmsfs.buckets")))
    assert len(buckets) == 3  # 120 files, 50 per bucket
    value = os.getxattr(os.path.join(cipher, "f000"), "user.kmsfs.key")
    assert len(value) == 33 and value[0] == 2 and value[17:].hex() in buckets
    if subprocess.run(["stat", "-f", "-c", "%T", cipher], capture_output=True, text=True).stdout.strip() == "ext2/ext3":
        # ext4: the attribute lives in the inode, so a 1-byte file costs one 4 KiB block.
        assert os.stat(os.path.join(cipher, "f000")).st_blocks == 8
    lines = kmsfs("keys", cipher, env=env).stdout.splitlines()
    assert lines[1].split("\t")[0] == str(FILES) and lines[1].endswith(first)

    # Re-wrapped offline, bucket by bucket: three ReEncrypts for 120 files.
    kmsfs("allow-key", cipher, second, env=env)
    done = kmsfs("rewrap", cipher, "--to", second, env=env)
    assert "3 re-wrapped" in done.stdout and "bucket keys" in done.stdout
    assert kmsfs("keys", cipher, env=env).stdout.splitlines()[1].endswith(second)
    assert len(kmsfs("shred-report", cipher, "--key", second, env=env).stdout.split()) == FILES
    refused = kmsfs("rewrap", cipher, "--to", second, "--path", "f001", env=env, check=False)
    assert refused.returncode == 8 and "bucket keys" in refused.stderr
    with foreground_mount(cipher, mount_point, env=env):
        for index in range(FILES):
            with open(os.path.join(mount_point, "f%03d" % index), "rb") as f:
                assert f.read() == (b"%d" % index if index else b"x")
        online = kmsfs("rewrap", mount_point, "--to", first, env=env, check=False)
        assert online.returncode == 8 and "bucket keys" in online.stderr

    # Tampering: a file pointed at another bucket, and a bucket record removed.
    victim = os.path.join(cipher, "f010")
    other_bucket = next(b for b in buckets if b != value[17:].hex())
    original = os.getxattr(victim, "user.kmsfs.key")
    os.setxattr(victim, "user.kmsfs.key", original[:17] + bytes.fromhex(other_bucket))
    os.rename(os.path.join(cipher, "kmsfs.buckets", buckets[2]), os.path.join(os.path.dirname(cipher), "moved-bucket"))
    with foreground_mount(cipher, mount_point, env=env):
        with pytest.raises(OSError) as excinfo:
            open(os.path.join(mount_point, "f010"), "rb").read()
        assert excinfo.value.errno == 5
        orphans = [name for name in os.listdir(mount_point) if name.startswith("f")
                   and os.getxattr(os.path.join(cipher, name), "user.kmsfs.key")[17:].hex() == buckets[2]]
        assert orphans
        for name in orphans:
            with pytest.raises(OSError):
                open(os.path.join(mount_point, name), "rb").read()
    fsck = kmsfs("fsck", cipher, env=env, check=False)
    assert fsck.returncode == 4
    findings = {line.split()[1].rstrip(":"): line.split()[0] for line in fsck.stdout.splitlines()
                if line.startswith(("UNREADABLE", "DAMAGED"))}
    assert {name for name, kind in findings.items() if kind == "UNREADABLE"} == set(orphans)
    assert "missing from kmsfs.buckets" in fsck.stdout
    # Pointed at another bucket, the file derives a key under which none of its chunks authenticate.
    assert findings.get("f010") in ("UNREADABLE", "DAMAGED") and len(findings) == len(orphans) + 1

    kmsd.stop()
    made = [r for r in audit(kmsd, first) if r["operation"] == "GenerateDataKey" and not r.get("errorCode")
            and "kmsfs:bucket" in (r.get("encryptionContext") or {})]
    assert len(made) == 3
    assert not [r for r in audit(kmsd, first) if r["operation"] == "GenerateDataKey"
                and "kmsfs:file" in (r.get("encryptionContext") or {})]


def test_a_planted_bucket_directory_link_is_not_followed(bucket_volume):
    """Whoever can write the backing directory makes kmsfs.buckets a link to another directory:
    the daemon (root) writes no bucket record there, and creating files fails instead."""
    kmsd, env, cipher, mount_point, first, second = bucket_volume
    elsewhere = os.path.join(os.path.dirname(cipher), "elsewhere")
    os.mkdir(elsewhere)
    assert stat.S_IMODE(os.stat(os.path.join(cipher, "kmsfs.buckets")).st_mode) == 0o700  # made at init
    os.rmdir(os.path.join(cipher, "kmsfs.buckets"))
    os.symlink(elsewhere, os.path.join(cipher, "kmsfs.buckets"))
    with foreground_mount(cipher, mount_point, env=env):
        with pytest.raises(OSError):
            with open(os.path.join(mount_point, "new"), "wb") as f:
                f.write(b"x")
    assert os.listdir(elsewhere) == []
    assert not [name for name in os.listdir(cipher) if name == "new"]


def test_planted_bucket_records_and_directories_are_refused_not_trusted(bucket_volume):
    """Another user's (or a group-writable) kmsfs.buckets, and a FIFO in a record's place: EIO at
    once, never a hang and never a record from someone else."""
    kmsd, env, cipher, mount_point, first, second = bucket_volume
    with foreground_mount(cipher, mount_point, env=env):
        with open(os.path.join(mount_point, "mine"), "wb") as f:
            f.write(b"mine")
    bucket = os.getxattr(os.path.join(cipher, "mine"), "user.kmsfs.key")[17:].hex()
    record = os.path.join(cipher, "kmsfs.buckets", bucket)
    saved = open(record, "rb").read()
    os.unlink(record)
    os.mkfifo(record)
    with foreground_mount(cipher, mount_point, env=env):
        outcome = []
        reader = threading.Thread(target=lambda: outcome.append(subprocess.run(["cat", os.path.join(mount_point, "mine")],
                                                                                 capture_output=True, timeout=20).returncode))
        reader.start()
        reader.join(25)
        assert outcome and outcome[0] != 0
    os.unlink(record)
    with open(record, "wb") as f:
        f.write(saved)
    os.chmod(os.path.join(cipher, "kmsfs.buckets"), 0o777)
    with foreground_mount(cipher, mount_point, env=env):
        with pytest.raises(OSError) as excinfo:
            open(os.path.join(mount_point, "mine"), "rb").read()
        assert excinfo.value.errno == 5
    os.chmod(os.path.join(cipher, "kmsfs.buckets"), 0o700)
    os.chown(os.path.join(cipher, "kmsfs.buckets"), 65534, 65534)
    with foreground_mount(cipher, mount_point, env=env):
        with pytest.raises(OSError):
            open(os.path.join(mount_point, "mine"), "rb").read()
    os.chown(os.path.join(cipher, "kmsfs.buckets"), 0, 0)
    with foreground_mount(cipher, mount_point, env=env):
        assert open(os.path.join(mount_point, "mine"), "rb").read() == b"mine"
