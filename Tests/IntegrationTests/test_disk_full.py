"""A full backing filesystem (a 6 MiB tmpfs): the writer gets ENOSPC — at write(2) without the
writeback cache, at the latest at fsync/close with it — creating more files fails cleanly, and
every file reads without error then and after space is back and the volume is remounted (no
torn chunk, no file without its key)."""
import errno
import os
import subprocess
import tempfile

import pytest

from test_mount import KMSFS, foreground_mount, mounted

pytestmark = [pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse"),
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")]


def fill(path):
    """Writes 256 KiB blocks to `path` until the filesystem is full; returns the bytes that the
    writer was told were written and the errno it got (write, fsync or close)."""
    written = b""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for i in range(1000):
            block = os.urandom(256 * 1024)
            try:
                os.write(fd, block)
            except OSError as error:
                return written, error.errno
            written += block
        os.fsync(fd)
    except OSError as error:
        return written, error.errno
    finally:
        try:
            os.close(fd)
        except OSError as error:
            return written, error.errno
    return written, None


@pytest.mark.parametrize("options", [["-o", "no_writeback_cache"], []], ids=["write-through", "writeback"])
def test_enospc_then_recovery(options):
    with tempfile.TemporaryDirectory(prefix="kmsfs-full-") as root:
        backing, mount_point = os.path.join(root, "backing"), os.path.join(root, "mnt")
        os.mkdir(backing)
        os.mkdir(mount_point)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "kmsfs-full", backing], check=True)
        try:
            cipher = os.path.join(backing, "cipher")
            # The key store lives outside the small filesystem: only the ciphertext fills it.
            subprocess.run([KMSFS, "init", cipher, "--key-store", os.path.join(root, "keys")], check=True, capture_output=True)
            kept = os.urandom(300_000)
            with foreground_mount(cipher, mount_point, extra=[*options, "--key-store", os.path.join(root, "keys")]):
                with open(os.path.join(mount_point, "kept.bin"), "wb") as f:
                    f.write(kept)
                written, error = fill(os.path.join(mount_point, "fill.bin"))
                assert error == errno.ENOSPC
                # Small files into what is left, until creating or writing one fails: ENOSPC.
                with pytest.raises(OSError) as excinfo:
                    for i in range(10_000):
                        with open(os.path.join(mount_point, "small-%d.bin" % i), "wb") as f:
                            f.write(os.urandom(5_000))
                            f.flush()
                            os.fsync(f.fileno())
                assert excinfo.value.errno == errno.ENOSPC
                with open(os.path.join(mount_point, "kept.bin"), "rb") as f:
                    assert f.read() == kept
                # The file reads without EIO. Without the writeback cache the failed write changed
                # nothing (its space is reserved before any byte is), so the file is exactly what
                # write(2) acknowledged. With it, pages the kernel could not write back are lost,
                # as fsync reported: each page holds what was written there or zeros (a hole),
                # never other bytes.
                with open(os.path.join(mount_point, "fill.bin"), "rb") as f:
                    data = f.read()
                if options:
                    assert data == written
                else:
                    page = 4096
                    for at in range(0, len(data), page):
                        got = data[at:at + page]
                        assert got == written[at:at + len(got)] or got == bytes(len(got)), "page at %d" % at
                os.unlink(os.path.join(mount_point, "fill.bin"))
                again = os.urandom(1_000_000)
                with open(os.path.join(mount_point, "again.bin"), "wb") as f:
                    f.write(again)
            with foreground_mount(cipher, mount_point, extra=[*options, "--key-store", os.path.join(root, "keys")]):
                for name in os.listdir(mount_point):
                    with open(os.path.join(mount_point, name), "rb") as f:
                        f.read()  # every file decrypts: no EIO
                with open(os.path.join(mount_point, "again.bin"), "rb") as f:
                    assert f.read() == again
        finally:
            if mounted(mount_point):
                subprocess.run(["fusermount3", "-uz", mount_point], capture_output=True)
            subprocess.run(["umount", backing], capture_output=True)
