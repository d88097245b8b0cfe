"""kmsfs fsck on real volumes: refused while an embedded volume is mounted, clean after writes
through a mount, and after tampering it names each damaged file and the byte ranges that a read
through a fresh mount then refuses with EIO — while every other byte still reads. On a volume at
kmsd: a refused key makes files UNREADABLE (exit 4), a dead key service makes the check impossible
(exit 8). Exit statuses follow fsck(8)."""
import errno
import os
import re
import subprocess

import pytest

from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")

CHUNK = 16384
STORED_CHUNK = CHUNK + 40  # 24-byte nonce, 16-byte tag
HEADER = 32


def fsck(cipher, *arguments, env=None):
    return subprocess.run([KMSFS, "fsck", *arguments, cipher], capture_output=True, text=True, timeout=120, env=env)


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x04]))


def test_fsck_names_damaged_ranges_that_the_mount_refuses():
    payloads = {"a": os.urandom(100000), "b": os.urandom(10), "sub/c": os.urandom(3 * CHUNK), "sparse": None}
    with new_volume("kmsfs-fsck-", PLAINTEXT_NAMES, "--sparse") as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            os.mkdir(os.path.join(mount_point, "sub"))
            for name, data in payloads.items():
                with open(os.path.join(mount_point, name), "wb") as f:
                    if data is None:
                        f.truncate(5 * CHUNK + 1)
                    else:
                        f.write(data)
            busy = fsck(cipher)
            assert busy.returncode == 8 and "already mounted at" in busy.stderr, busy

        clean = fsck(cipher, "--holes")
        assert clean.returncode == 0, clean
        assert "4 files checked: 0 unreadable, 0 damaged, 1 with holes" in clean.stdout
        assert re.search(r"^HOLES sparse: bytes %d-%d" % (CHUNK, 5 * CHUNK - 1), clean.stdout, re.M), clean.stdout

        # Two chunks of a (2, and the final 6), the attribute of b, nothing of sub/c.
        flip(os.path.join(cipher, "a"), HEADER + 2 * STORED_CHUNK + 40)
        flip(os.path.join(cipher, "a"), HEADER + 6 * STORED_CHUNK + 40)
        os.removexattr(os.path.join(cipher, "b"), "user.kmsfs.key")
        damaged = fsck(cipher)
        assert damaged.returncode == 4, damaged
        lines = damaged.stdout.splitlines()
        assert "DAMAGED a: bytes %d-%d, %d-%d fail authentication" % (2 * CHUNK, 3 * CHUNK - 1, 6 * CHUNK, 99999) in lines, lines
        assert any(line.startswith("UNREADABLE b: ") and "no key attribute" in line for line in lines), lines
        assert not any("sub/c" in line or "HOLES" in line for line in lines), lines
        assert "4 files checked: 1 unreadable, 1 damaged, 1 with holes" in lines[-1]

        # The mount agrees, byte range by byte range.
        with foreground_mount(cipher, mount_point):
            def read_at(name, offset, length):
                with open(os.path.join(mount_point, name), "rb", buffering=0) as f:
                    return os.pread(f.fileno(), length, offset)
            # Page by page (a read spanning good and bad pages returns the good part, short).
            for offset in range(0, 100000, 4096):
                length = min(4096, 100000 - offset)
                if 2 * CHUNK <= offset < 3 * CHUNK or offset >= 6 * CHUNK:
                    with pytest.raises(OSError) as excinfo:
                        read_at("a", offset, length)
                    assert excinfo.value.errno == errno.EIO
                else:
                    assert read_at("a", offset, length) == payloads["a"][offset:offset + length]
            with pytest.raises(OSError) as excinfo:
                read_at("b", 0, 10)
            assert excinfo.value.errno == errno.EIO
            assert read_at("sub/c", 0, 3 * CHUNK) == payloads["sub/c"]


def test_fsck_on_kmsd_refused_key_and_dead_service(own_kmsd):
    kmsd = own_kmsd
    client = kmsd.client()
    key = client.create_key(Description="fsck")["KeyMetadata"]
    env = kmsd.client_environment()
    with new_volume("kmsfs-fsck-kmsd-", PLAINTEXT_NAMES, *kmsd.volume_arguments(key["Arn"]), env=env) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=env):
            for name in ("x", "y"):
                with open(os.path.join(mount_point, name), "wb") as f:
                    f.write(os.urandom(20000))
        assert fsck(cipher, env=env).returncode == 0
        client.disable_key(KeyId=key["KeyId"])
        # The volume's own key refused: its configuration cannot be verified, so nothing can be
        # concluded about the files (8), and the reason is the service's.
        refused = fsck(cipher, env=env)
        assert refused.returncode == 8, refused
        assert "Disabled" in refused.stderr and refused.stdout == ""
        client.enable_key(KeyId=key["KeyId"])
        kmsd.stop()
        dead = fsck(cipher, env=env)
        assert dead.returncode == 8 and "kmsfs fsck:" in dead.stderr and dead.stdout == "", dead
