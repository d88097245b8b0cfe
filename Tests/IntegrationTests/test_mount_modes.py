"""How kmsfs is mounted: in the background (the default), as a mount helper (mount -t fuse,
/etc/fstab), stopped by SIGTERM; kmsfs info on mount and backing paths; a key attribute moved to
another file. Every mount is undone and every daemon ended when a test ends, pass or fail."""
import errno
import os
import signal
import subprocess
import tempfile
import time

import pytest

from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, mounted, new_volume, unmount

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")


def daemons_of(cipher):
    """PIDs of processes whose command line names `cipher` (the mount daemons of that volume)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(os.path.basename(a) == b"kmsfs" or a.endswith(b"/kmsfs#" + cipher.encode()) for a in argv[:1]) and \
                    any(cipher.encode() in a for a in argv):
                found.append(int(entry))
    return found


def daemons_end(cipher, seconds=30):
    """Whether the volume's daemons have all exited within `seconds` (after an unmount)."""
    deadline = time.time() + seconds
    while daemons_of(cipher):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture()
def volume_dirs():
    """An initialized volume and a mount point; afterwards nothing stays mounted or running."""
    with new_volume("kmsfs-modes-", PLAINTEXT_NAMES) as (cipher, mount_point):
        try:
            yield cipher, mount_point
        finally:
            unmount(mount_point)
            daemons_end(cipher)
            for pid in daemons_of(cipher):
                os.kill(pid, signal.SIGKILL)
            assert not mounted(mount_point)


def test_background_mount_and_info(volume_dirs):
    cipher, mount_point = volume_dirs
    # The command returns once the volume is mounted, leaving a daemon behind.
    result = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert mounted(mount_point) and daemons_of(cipher)
    with open(os.path.join(mount_point, "report.txt"), "w") as f:
        f.write("quarterly numbers")
    through_mount = subprocess.run([KMSFS, "info", os.path.join(mount_point, "report.txt")], capture_output=True, text=True, check=True).stdout
    from_backing = subprocess.run([KMSFS, "info", os.path.join(cipher, "report.txt")], capture_output=True, text=True, check=True).stdout
    assert through_mount == from_backing and "plaintext size: 17" in through_mount and "KMS key: arn:aws:kms:" in through_mount
    assert "default KMS key for new files" in subprocess.run([KMSFS, "info", mount_point], capture_output=True, text=True, check=True).stdout
    # The same again is refused (already mounted) with a message, and the first mount is unharmed.
    again = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "kmsfs mount:" in again.stderr
    subprocess.run([KMSFS, "umount", mount_point], check=True)
    assert daemons_end(cipher) and not mounted(mount_point)


def test_background_mount_failures_are_reported(volume_dirs):
    cipher, mount_point = volume_dirs
    result = subprocess.run([KMSFS, "mount", os.path.dirname(cipher), mount_point], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "not a kmsfs volume" in result.stderr
    result = subprocess.run([KMSFS, "mount", cipher, mount_point + "-missing"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot mount" in result.stderr
    result = subprocess.run([KMSFS, "mount", cipher, mount_point, "-o", "no_such_option"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "no_such_option" in result.stderr
    assert not mounted(mount_point) and not daemons_of(cipher)


def test_sigterm_unmounts_cleanly_and_keeps_data(volume_dirs):
    cipher, mount_point = volume_dirs
    with foreground_mount(cipher, mount_point) as daemon:
        payload = os.urandom(100_000)
        with open(os.path.join(mount_point, "kept.bin"), "wb") as f:
            f.write(payload)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        assert not mounted(mount_point)
        assert b"unmounted" in daemon.read_log()
    subprocess.run([KMSFS, "mount", cipher, mount_point], check=True, timeout=30)
    with open(os.path.join(mount_point, "kept.bin"), "rb") as f:
        assert f.read() == payload


@pytest.mark.skipif(os.geteuid() != 0, reason="mount(8) and fstab need root")
def test_mount_helper_and_fstab_line(volume_dirs):
    cipher, mount_point = volume_dirs
    source = "%s#%s" % (os.path.abspath(KMSFS), cipher)
    # mount(8) -> mount.fuse3 -> `kmsfs CIPHERDIR MNT -o rw,noatime,...`, with fstab-only options.
    subprocess.run(["mount", "-t", "fuse", source, mount_point, "-o", "_netdev,nofail,noatime"], check=True, timeout=30)
    assert mounted(mount_point)
    with open(os.path.join(mount_point, "via-helper"), "w") as f:
        f.write("ok")
    subprocess.run(["umount", mount_point], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".fstab") as fstab:
        fstab.write("%s %s fuse defaults,_netdev,x-systemd.after=kmsd.service 0 0\n" % (source, mount_point))
        fstab.flush()
        subprocess.run(["mount", "-T", fstab.name, mount_point], check=True, timeout=30)
    assert mounted(mount_point)
    with open(os.path.join(mount_point, "via-helper")) as f:
        assert f.read() == "ok"
    subprocess.run(["umount", mount_point], check=True)


def test_a_key_attribute_moved_to_another_file_reads_as_eio(volume_dirs):
    cipher, mount_point = volume_dirs
    subprocess.run([KMSFS, "mount", cipher, mount_point], check=True, timeout=30)
    for name in ("a.txt", "b.txt", "c.txt"):
        with open(os.path.join(mount_point, name), "w") as f:
            f.write("contents of " + name)
    subprocess.run([KMSFS, "umount", mount_point], check=True)
    assert daemons_end(cipher)
    # Offline, someone copies a's wrapped key onto b, and strips c's.
    os.setxattr(os.path.join(cipher, "b.txt"), "user.kmsfs.key", os.getxattr(os.path.join(cipher, "a.txt"), "user.kmsfs.key"))
    os.removexattr(os.path.join(cipher, "c.txt"), "user.kmsfs.key")
    subprocess.run([KMSFS, "mount", cipher, mount_point], check=True, timeout=30)
    with open(os.path.join(mount_point, "a.txt")) as f:
        assert f.read() == "contents of a.txt"
    for name in ("b.txt", "c.txt"):
        with pytest.raises(OSError) as excinfo:
            open(os.path.join(mount_point, name)).read()
        assert excinfo.value.errno == errno.EIO
