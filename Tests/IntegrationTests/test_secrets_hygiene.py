"""Processes that hold keys keep them out of core files: kmsd and the kmsfs mount daemon run with
a core-size limit of 0 and are marked not dumpable (the latter is not visible from outside to
root, so only the limit is checked here)."""
import os

import pytest

from test_mount import foreground_mount, new_volume


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        line = next(l for l in f if l.startswith("Max core file size"))
    return line.split()[4:6]


def test_kmsd_writes_no_core_files(kmsd):
    assert core_limit(kmsd.process.pid) == ["0", "0"]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")
def test_the_mount_daemon_writes_no_core_files():
    with new_volume("kmsfs-hygiene-") as (cipher, mount_point), foreground_mount(cipher, mount_point) as daemon:
        assert core_limit(daemon.pid) == ["0", "0"]
