"""Extended attributes through a real mount: user.* is stored (in the backing file); security.*,
system.* (POSIX ACLs) and trusted.* are not, and are answered without reaching the backing store,
so that `ls -l` stops asking every file for its SELinux label and ACL."""
import errno
import os
import subprocess

import pytest

from test_mount import foreground_mount, new_volume


@pytest.fixture()
def volume():
    with new_volume("kmsfs-xattr-") as (cipher, mount_point), foreground_mount(cipher, mount_point):
        yield cipher, mount_point


def error_of(call, *arguments):
    with pytest.raises(OSError) as excinfo:
        call(*arguments)
    return excinfo.value.errno


def test_user_attributes_round_trip_and_other_namespaces_are_not_stored(volume):
    cipher, mount_point = volume
    path = os.path.join(mount_point, "file")
    with open(path, "w") as f:
        f.write("x")
    os.setxattr(path, "user.colour", b"blue")
    assert os.getxattr(path, "user.colour") == b"blue"
    backing = os.path.join(cipher, "file")
    assert os.getxattr(backing, "user.colour") == b"blue"

    # Root may write trusted.* and security.* on the backing filesystem (ext4 or tmpfs); through
    # the mount they are refused and nothing lands in the backing file.
    for name in ("trusted.note", "security.selinux", "security.ima", "system.posix_acl_access"):
        assert error_of(os.setxattr, path, name, b"value") == errno.EOPNOTSUPP, name
        assert error_of(os.getxattr, path, name) == errno.EOPNOTSUPP, name
        assert error_of(os.removexattr, path, name) == errno.EOPNOTSUPP, name
    assert not [n for n in os.listxattr(backing) if not n.startswith("user.")]
    # The kernel asks for file capabilities before every write: absent, not unsupported.
    assert error_of(os.getxattr, path, "security.capability") == errno.ENODATA
    # An attribute put in the backing store behind kmsfs's back is not shown either.
    os.setxattr(backing, "trusted.planted", b"1")
    assert "trusted.planted" not in os.listxattr(path)
    assert os.listxattr(path) == ["user.colour"]
    # setfacl says plainly that this mount has no ACLs, and sets none.
    refused = subprocess.run(["setfacl", "-m", "u:nobody:r", path], capture_output=True, text=True)
    assert refused.returncode != 0 and "not supported" in refused.stderr
    with open(path) as f:
        assert f.read() == "x"


def test_ls_l_asks_for_labels_and_acls_once_per_mount_not_per_file(volume):
    _, mount_point = volume
    for index in range(100):
        with open(os.path.join(mount_point, "f%03d" % index), "w") as f:
            f.write("x")
    traced = subprocess.run(["strace", "-f", "-c", "-e", "trace=getxattr,lgetxattr,fgetxattr,listxattr,llistxattr",
                             "ls", "-l", mount_point], capture_output=True, text=True, check=True)
    assert len(traced.stdout.splitlines()) == 101  # "total" and 100 files
    calls = sum(int(line.split()[3]) for line in traced.stderr.splitlines()
                if line.split()[-1:] and line.split()[-1].endswith("xattr") and line.split()[3].isdigit())
    assert 0 < calls <= 4, traced.stderr
