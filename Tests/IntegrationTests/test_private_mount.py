"""A mount only its owner reaches (no allow_other): the kernel lets no other uid in, kmsfs leaves
out default_permissions (it costs a round trip per change in a directory), and the backing
filesystem refuses the owner what ext4 would — the daemon runs with the owner's credentials.
Checked as an unprivileged user, through the kernel."""
import os
import shutil
import subprocess
import tempfile

import pytest

from test_adversaries import NOBODY, as_user
from test_mount import KMSFS

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root")


@pytest.fixture()
def fuse_for_users():
    """/dev/fuse open to unprivileged users for the test (it is 0600 in some containers)."""
    mode = os.stat("/dev/fuse").st_mode & 0o777
    os.chmod("/dev/fuse", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)


def test_the_owner_of_a_private_mount_is_refused_what_ext4_would_refuse(fuse_for_users):
    root = tempfile.mkdtemp(prefix="kmsfs-private-")
    os.chmod(root, 0o755)
    home = os.path.join(root, "home")
    os.mkdir(home)
    os.chown(home, NOBODY, NOBODY)
    cipher, mount_point = os.path.join(home, "cipher"), os.path.join(home, "mnt")
    environment = "HOME=%s" % home
    try:
        as_user(NOBODY, NOBODY, "cd %s && mkdir mnt && env %s %s init %s </dev/null && env %s %s mount %s %s"
                % (home, environment, KMSFS, cipher, environment, KMSFS, cipher, mount_point), check=True)
        options = [line.split()[3] for line in open("/proc/mounts") if line.split()[1] == mount_point]
        assert options and "default_permissions" not in options[0]
        script = r"""cd %s
            echo hello > file && chmod 444 file
            (echo more >> file) 2>/dev/null && echo append-allowed || echo append-refused
            test -w file && echo writable || echo not-writable
            test -r file && echo readable || echo not-readable
            chmod 000 file; cat file 2>/dev/null && echo read-allowed || echo read-refused
            chmod 644 file; cat file
            mkdir closed && chmod 555 closed
            touch closed/x 2>/dev/null && echo create-allowed || echo create-refused
            mkdir hidden && chmod 600 hidden
            (cd hidden) 2>/dev/null && echo chdir-allowed || echo chdir-refused
            printf '#!/bin/sh\necho ran\n' > script && chmod 644 script
            ./script 2>/dev/null || echo exec-refused
            chmod 755 script && ./script""" % mount_point
        result = as_user(NOBODY, NOBODY, script)
        assert result.stdout.split() == ["append-refused", "not-writable", "readable", "read-refused", "hello",
                                         "create-refused", "chdir-refused", "exec-refused", "ran"], result.stdout + result.stderr
        # Root is not let in at all: the mount is its owner's alone.
        with pytest.raises(PermissionError):
            os.listdir(mount_point)
    finally:
        subprocess.run(["fusermount3", "-u", mount_point], capture_output=True)
        subprocess.run(["pkill", "-f", cipher], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
