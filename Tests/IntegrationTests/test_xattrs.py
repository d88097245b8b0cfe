"""Extended attributes through a real mount: user.* is stored (in the backing file); security.*,
system.* (POSIX ACLs) and trusted.* are not, and are answered without reaching the backing store,
so that `ls -l` stops asking every file for its SELinux label and ACL."""
import errno
import os
import subprocess

import pytest

from test_mount import PLAINTEXT_NAMES, foreground_mount, new_volume


@pytest.fixture()
def volume():
    with new_volume("kmsfs-xattr-", PLAINTEXT_NAMES) as (cipher, mount_point), foreground_mount(cipher, mount_point):
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


def test_writes_ask_for_file_capabilities_once_per_file_and_still_drop_set_id_bits():
    """kmsfs tells the kernel it drops set-ID bits itself (FUSE_HANDLE_KILLPRIV_V2): the kernel
    then stops asking security.capability before every write, and kmsfs must do what the VFS
    would — checked here as another user, in the backing file and in what the mount shows."""
    from test_adversaries import NOBODY, as_user
    from test_metrics import UnixHTTPConnection, scrape, total

    with new_volume("kmsfs-killpriv-", PLAINTEXT_NAMES) as (cipher, mount_point):
        os.chmod(os.path.dirname(cipher), 0o755)
        socket_path = os.path.join(os.path.dirname(cipher), "metrics.sock")
        with foreground_mount(cipher, mount_point, extra=("-o", "allow_other,metrics=unix:" + socket_path)):
            os.chmod(mount_point, 0o777)
            path = os.path.join(mount_point, "many")
            with open(path, "wb") as f:
                f.write(b"x")

            def getxattr_requests():
                return total(scrape(UnixHTTPConnection(socket_path)), "kmsfs_fuse_requests_total", operation="getxattr")

            before = getxattr_requests()
            fd = os.open(path, os.O_WRONLY)
            try:
                for index in range(100):
                    os.pwrite(fd, b"y", index)
            finally:
                os.close(fd)
            assert getxattr_requests() - before <= 1

            script = """cd %s
                for name in write truncate otrunc keep; do echo a > $name; done
                chmod 6775 write truncate otrunc; chmod 2664 keep
                echo b >> write; truncate -s 1 truncate; : > otrunc; echo b >> keep
                stat -c '%%n %%a' write truncate otrunc keep""" % mount_point
            shown = as_user(NOBODY, NOBODY, script, check=True).stdout.split()
            expected = {"write": "775", "truncate": "775", "otrunc": "775", "keep": "2664"}
            assert dict(zip(shown[::2], shown[1::2])) == expected
            for name, mode in expected.items():
                assert "%o" % (os.stat(os.path.join(cipher, name)).st_mode & 0o7777) == mode, name
            # Root holds CAP_FSETID: its writes go through the page cache and keep the bits.
            privileged = os.path.join(mount_point, "privileged")
            with open(privileged, "w") as f:
                f.write("a")
            os.chmod(privileged, 0o4755)
            with open(privileged, "a") as f:
                f.write("b")
            assert os.stat(privileged).st_mode & 0o7777 == 0o4755


def test_truncating_opens_fallocate_and_group_rules_as_ext4_has_them():
    """A second review found these: O_RDONLY|O_TRUNC was not truncated (a later write mixed old
    and new bytes); fallocate kept set-user-ID; set-group-ID without group execute was kept for
    a writer outside the file's group."""
    from test_adversaries import NOBODY, as_user
    with new_volume("kmsfs-trunc-", PLAINTEXT_NAMES) as (cipher, mount_point):
        os.chmod(os.path.dirname(cipher), 0o755)
        with foreground_mount(cipher, mount_point, extra=("-o", "allow_other")):
            os.chmod(mount_point, 0o777)
            path = os.path.join(mount_point, "precious")
            with open(path, "w") as f:
                f.write("precious")
            os.close(os.open(path, os.O_RDONLY | os.O_TRUNC))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"NEW")
            os.close(fd)
            subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
            with open(path) as f:
                assert f.read() == "NEW"
            for name, mode, expected in (("suid", 0o4777, 0o777), ("sgid", 0o2767, 0o767)):
                target = os.path.join(mount_point, name)
                with open(target, "w") as f:
                    f.write("x")
                os.chmod(target, mode)
            as_user(NOBODY, NOBODY, "fallocate -l 100000 %s/suid && echo y >> %s/sgid" % (mount_point, mount_point), check=True)
            assert os.stat(os.path.join(cipher, "suid")).st_mode & 0o7777 == 0o777
            assert os.stat(os.path.join(cipher, "sgid")).st_mode & 0o7777 == 0o767
