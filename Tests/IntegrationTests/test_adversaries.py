"""kmsfs against its adversaries, through a real mount and the real kernel: another local user on
a shared (allow_other) mount, whoever can write the backing directory, a second mount, a
broken configuration. Every mount is undone when its test ends, pass or fail."""
import errno
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import REGION
from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, mounted, new_volume, unmount

NOBODY = 65534
pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root")


def as_user(uid, gid, script, check=False):
    """Runs a shell script as uid/gid (no supplementary groups); returns the CompletedProcess."""
    return subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(gid), "--clear-groups", "sh", "-c", script],
                          capture_output=True, text=True, check=check)


@pytest.fixture()
def shared():
    """A volume mounted with allow_other, its root open to everyone (as /srv would be)."""
    with new_volume("kmsfs-shared-", PLAINTEXT_NAMES) as (cipher, mount_point):
        os.chmod(os.path.dirname(cipher), 0o755)
        with foreground_mount(cipher, mount_point, extra=["-o", "allow_other"]):
            os.chmod(mount_point, 0o755)
            yield cipher, mount_point


def test_other_users_get_what_ext4_would_give_them(shared):
    cipher, m = shared
    secret = os.path.join(m, "secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    result = as_user(NOBODY, NOBODY, f"cat {secret}")
    assert result.returncode != 0 and "Permission denied" in result.stderr
    result = as_user(NOBODY, NOBODY, f"echo mine > {secret}")
    assert result.returncode != 0 and "Permission denied" in result.stderr
    assert open(secret).read() == "root only\n"
    result = as_user(NOBODY, NOBODY, f"truncate -s 0 {secret}")
    assert result.returncode != 0
    # Not the owner: no chmod, no chown, no times of its choosing, no access(2) yes.
    assert as_user(NOBODY, NOBODY, f"chmod 666 {secret}").returncode != 0
    assert as_user(NOBODY, NOBODY, f"chown {NOBODY} {secret}").returncode != 0
    assert as_user(NOBODY, NOBODY, f"touch -d 2001-01-01 {secret}").returncode != 0
    assert as_user(NOBODY, NOBODY, f"test -r {secret}").returncode != 0
    assert os.stat(secret).st_mode & 0o777 == 0o600 and os.stat(secret).st_uid == 0
    # A directory without search permission hides what is below it.
    private = os.path.join(m, "private")
    os.mkdir(private, 0o700)
    with open(os.path.join(private, "inner"), "w") as f:
        f.write("x")
    os.chmod(os.path.join(private, "inner"), 0o644)
    assert as_user(NOBODY, NOBODY, f"cat {private}/inner").returncode != 0
    # Sticky directory: others' files cannot be removed or renamed away.
    tmp = os.path.join(m, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    with open(os.path.join(tmp, "roots"), "w") as f:
        f.write("r")
    assert as_user(NOBODY, NOBODY, f"rm -f {tmp}/roots").returncode != 0
    assert as_user(NOBODY, NOBODY, f"mv {tmp}/roots {tmp}/moved").returncode != 0
    assert os.path.exists(os.path.join(tmp, "roots"))
    # A root-owned file is not writable to others even in a world-writable directory.
    with open(os.path.join(tmp, "public"), "w") as f:
        f.write("r")
    os.chmod(os.path.join(tmp, "public"), 0o644)
    assert as_user(NOBODY, NOBODY, f"echo x >> {tmp}/public").returncode != 0


def test_what_a_user_creates_is_theirs(shared):
    cipher, m = shared
    tmp = os.path.join(m, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    as_user(NOBODY, NOBODY, f"umask 027; echo data > {tmp}/f; mkdir {tmp}/d; ln -s f {tmp}/l; mkfifo {tmp}/p", check=True)
    for name, kind, mode in [("f", stat.S_IFREG, 0o640), ("d", stat.S_IFDIR, 0o750), ("p", stat.S_IFIFO, 0o640)]:
        info = os.lstat(os.path.join(tmp, name))
        assert (stat.S_IFMT(info.st_mode), info.st_uid, info.st_gid, info.st_mode & 0o7777) == (kind, NOBODY, NOBODY, mode), name
        backing = os.lstat(os.path.join(cipher, "tmp", name))
        assert (backing.st_uid, backing.st_gid) == (NOBODY, NOBODY), name
    assert os.lstat(os.path.join(tmp, "l")).st_uid == NOBODY
    # The owner can then do everything an owner does.
    as_user(NOBODY, NOBODY, f"truncate -s 3 {tmp}/f; echo more >> {tmp}/f; chmod 600 {tmp}/f; touch -d 2001-01-01 {tmp}/f", check=True)
    assert as_user(NOBODY, NOBODY, f"cat {tmp}/f", check=True).stdout == "datmore\n"
    # Not root: chown is EPERM, as on ext4.
    assert "Operation not permitted" in as_user(NOBODY, NOBODY, f"chown 0 {tmp}/f").stderr
    # setgid directory: new nodes take its group, new directories its setgid bit.
    group = os.path.join(m, "group")
    os.mkdir(group)
    os.chown(group, 0, 4242)
    os.chmod(group, 0o2777)
    as_user(NOBODY, NOBODY, f"echo x > {group}/f; mkdir {group}/d", check=True)
    assert (os.stat(os.path.join(group, "f")).st_uid, os.stat(os.path.join(group, "f")).st_gid) == (NOBODY, 4242)
    assert os.stat(os.path.join(group, "d")).st_gid == 4242 and os.stat(os.path.join(group, "d")).st_mode & stat.S_ISGID
    # A write by someone else clears setuid, as the kernel requires.
    shared_file = os.path.join(tmp, "suid")
    with open(shared_file, "w") as f:
        f.write("x")
    os.chmod(shared_file, 0o4777)
    as_user(NOBODY, NOBODY, f"echo y >> {shared_file}", check=True)
    assert not os.stat(shared_file).st_mode & stat.S_ISUID


def test_special_files_live_as_themselves(shared):
    cipher, m = shared
    fifo, sock, dev = (os.path.join(m, n) for n in ("fifo", "sock", "null"))
    os.mkfifo(fifo, 0o600)
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert stat.S_ISCHR(os.stat(dev).st_mode) and os.stat(dev).st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(os.path.join(cipher, "fifo")).st_mode)
    # A server binds a Unix socket inside the mount and a client connects to it.
    server = socket.socket(socket.AF_UNIX)
    server.bind(sock)
    server.listen(1)
    client = socket.socket(socket.AF_UNIX)
    client.connect(sock)
    connection, _ = server.accept()
    client.sendall(b"ping")
    assert connection.recv(4) == b"ping"
    for s in (client, connection, server):
        s.close()
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    # A FIFO carries data between processes through the mount.
    writer = subprocess.Popen(["sh", "-c", f"echo through > {fifo}"])
    with open(fifo) as f:
        assert f.read() == "through\n"
    writer.wait(timeout=10)
    # rename, link, chmod, chown, utimens, unlink on them.
    os.rename(fifo, fifo + "2")
    os.link(fifo + "2", fifo + "3")
    os.chmod(fifo + "3", 0o640)
    os.chown(fifo + "3", NOBODY, NOBODY)
    os.utime(fifo + "3", (1000000000, 1000000000))
    info = os.stat(fifo + "2")
    assert (info.st_nlink, info.st_mode & 0o777, info.st_uid, int(info.st_mtime)) == (2, 0o640, NOBODY, 1000000000)
    # cp -a of a tree with them.
    tree = os.path.join(m, "tree")
    os.mkdir(tree)
    os.mkfifo(os.path.join(tree, "p"))
    with open(os.path.join(tree, "f"), "w") as f:
        f.write("content")
    subprocess.run(["cp", "-a", tree, os.path.join(m, "copy")], check=True)
    assert stat.S_ISFIFO(os.lstat(os.path.join(m, "copy", "p")).st_mode)
    assert open(os.path.join(m, "copy", "f")).read() == "content"
    os.unlink(fifo + "2")
    os.unlink(dev)
    # A regular file made with mknod(2) is an encrypted file like any other.
    plain = os.path.join(m, "made")
    os.mknod(plain, 0o644 | stat.S_IFREG)
    with open(plain, "w") as f:
        f.write("secret words")
    assert open(plain).read() == "secret words"
    assert b"secret words" not in open(os.path.join(cipher, "made"), "rb").read()


def test_one_mount_per_volume_and_no_fsck_beside_it():
    with new_volume("kmsfs-twice-", PLAINTEXT_NAMES) as (cipher, mount_point):
        other = mount_point + "2"
        os.mkdir(other)
        with foreground_mount(cipher, mount_point) as daemon:
            second = subprocess.run([KMSFS, "mount", cipher, other], capture_output=True, text=True, timeout=60)
            assert second.returncode == 1
            assert f"already mounted at {mount_point} (pid {daemon.pid})" in second.stderr
            assert not mounted(other)
            fsck = subprocess.run([KMSFS, "fsck", cipher], capture_output=True, text=True, timeout=60)
            assert fsck.returncode == 8 and "already mounted at" in fsck.stderr
        # The lock goes with the daemon, even a killed one.
        with foreground_mount(cipher, mount_point) as daemon:
            daemon.kill()
            daemon.wait()
        unmount(mount_point)
        with foreground_mount(cipher, other):
            pass


def remote_key(kmsd):
    return kmsd.client().create_key(Description="adversaries")["KeyMetadata"]["Arn"]


def test_one_mount_per_kmsd_volume(kmsd):
    env = kmsd.client_environment()
    with new_volume("kmsfs-twice-remote-", PLAINTEXT_NAMES, *kmsd.volume_arguments(remote_key(kmsd)), env=env) as (cipher, mount_point):
        other = mount_point + "2"
        os.mkdir(other)
        with foreground_mount(cipher, mount_point, env=env):
            second = subprocess.run([KMSFS, "mount", cipher, other], capture_output=True, text=True, env=env, timeout=60)
            assert second.returncode == 1 and "already mounted at" in second.stderr


def clone(source, target):
    """A backing file and its key attribute, copied: a second valid file with the same key."""
    shutil.copyfile(source, target)
    os.setxattr(target, "user.kmsfs.key", os.getxattr(source, "user.kmsfs.key"))


def read_error(path):
    """The errno of opening and reading a file through the mount, or None if it reads."""
    try:
        with open(path, "rb") as f:
            f.read()
        return None
    except OSError as error:
        return error.errno


def test_cut_and_zeroed_backing_files_never_read_as_something_else():
    """Cuts at every length up to two chunks (and past), whole chunks zeroed, the final chunk
    removed: through the kernel (cat, mmap, stat), each is EIO, never an empty or short file."""
    with new_volume("kmsfs-cuts-", PLAINTEXT_NAMES, "--chunk-size", "4096") as (cipher, mount_point):
        chunk, cipher_chunk = 4096, 4096 + 40
        plaintext = random.Random(7).randbytes(2 * chunk + 100)
        with foreground_mount(cipher, mount_point):
            with open(os.path.join(mount_point, "original"), "wb") as f:
                f.write(plaintext)
            with open(os.path.join(mount_point, "empty"), "wb"):
                pass
        original = os.path.join(cipher, "original")
        full = os.path.getsize(original)
        cuts = list(range(0, full))  # every length: header, first chunk, second, into the final one
        for length in cuts:
            clone(original, os.path.join(cipher, f"cut-{length}"))
            os.truncate(os.path.join(cipher, f"cut-{length}"), length)
        for index in range(2):  # a whole non-final chunk zeroed
            path = os.path.join(cipher, f"zeroed-{index}")
            clone(original, path)
            with open(path, "r+b") as f:
                f.seek(32 + index * cipher_chunk)
                f.write(bytes(cipher_chunk))
        clone(os.path.join(cipher, "empty"), os.path.join(cipher, "empty-cut"))
        os.truncate(os.path.join(cipher, "empty-cut"), 32)
        with foreground_mount(cipher, mount_point):
            assert open(os.path.join(mount_point, "original"), "rb").read() == plaintext
            silent = [name for name in os.listdir(mount_point)
                      if name not in ("original", "empty") and read_error(os.path.join(mount_point, name)) != errno.EIO]
            assert silent == []
            # stat says what it can; only contents need the key, and they fail.
            assert os.stat(os.path.join(mount_point, "empty-cut")).st_size == 0
            cat = subprocess.run(["cat", os.path.join(mount_point, "cut-60")], capture_output=True, text=True)
            assert cat.returncode != 0 and "Input/output error" in cat.stderr
        fsck = subprocess.run([KMSFS, "fsck", cipher], capture_output=True, text=True, timeout=300)
        assert fsck.returncode == 4
        assert "DAMAGED zeroed-0" in fsck.stdout and "DAMAGED zeroed-1" in fsck.stdout


def test_huge_sizes_from_an_unprivileged_user_are_errors_not_crashes(shared):
    cipher, m = shared
    tmp = os.path.join(m, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    result = as_user(NOBODY, NOBODY, f"echo x > {tmp}/f; truncate -s 9223372036854775000 {tmp}/f")
    assert result.returncode != 0 and "File too large" in result.stderr
    # A write there: with the writeback cache the kernel takes it into its cache (and owns the
    # size); the daemon refuses it when it is written back. Either way the daemon lives.
    as_user(NOBODY, NOBODY, f"dd if=/dev/zero of={tmp}/f bs=1 count=1 seek=9223372036854775000 conv=notrunc,fsync")
    with open(os.path.join(tmp, "f")) as f:
        assert f.read(2) == "x\n"
    assert mounted(m) and os.path.isdir(tmp)


def test_listings_are_complete_under_a_descriptor_limit_of_128():
    with new_volume("kmsfs-fds-", PLAINTEXT_NAMES) as (cipher, mount_point):
        for i in range(2000):
            open(os.path.join(cipher, f"f{i:04}"), "w").close()  # names only: listing needs no key
        daemon = subprocess.Popen(["prlimit", "--nofile=128:128", "--", KMSFS, "mount", "-f", cipher, mount_point],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(1500):
                if mounted(mount_point):
                    break
                assert daemon.poll() is None
                import time
                time.sleep(0.02)
            for attempt in range(3):
                names = subprocess.run(["ls", "-f", mount_point], capture_output=True, text=True).stdout.split()
                assert len([n for n in names if n.startswith("f")]) == 2000, attempt
            # ls -l asks for every entry; what cannot be looked up is an error, never missing.
            result = subprocess.run(["ls", "-l", mount_point], capture_output=True, text=True)
            listed = [line for line in result.stdout.splitlines() if line.rstrip().split(" ")[-1].startswith("f")]
            errors = [line for line in result.stderr.splitlines() if "cannot access" in line]
            assert len(listed) + len(errors) >= 2000
        finally:
            unmount(mount_point)
            daemon.kill()
            daemon.wait()


def rewrite_configuration(cipher, edit):
    path = os.path.join(cipher, "kmsfs.conf")
    with open(path) as f:
        configuration = json.load(f)
    edit(configuration)
    with open(path, "w") as f:
        json.dump(configuration, f)


@pytest.mark.parametrize("change", ["holes", "allowedKeyIDs", "defaultKeyID", "chunkSize", "seal", "format1", "format2"])
def test_a_changed_configuration_is_refused_at_mount(change):
    with new_volume("kmsfs-conf-", PLAINTEXT_NAMES) as (cipher, mount_point):
        def edit(configuration):
            if change == "holes":
                configuration["holes"] = "sparse"
            elif change == "allowedKeyIDs":
                configuration["allowedKeyIDs"] = ["arn:aws:kms:local:111122223333:key/attacker"]
            elif change == "defaultKeyID":
                configuration["defaultKeyID"] = configuration["defaultKeyID"][:-4] + "0000"
            elif change == "chunkSize":
                configuration["chunkSize"] = 4096
            elif change == "seal":
                configuration["seal"]["mac"] = "00" * 32
            else:
                configuration["formatVersion"] = int(change[-1])
        rewrite_configuration(cipher, edit)
        result = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and not mounted(mount_point)
        assert ("changed outside kmsfs" in result.stderr or "volume format %s" % change[-1] in result.stderr), result.stderr


def test_a_directory_key_planted_in_the_backing_directory_is_not_followed():
    with new_volume("kmsfs-plant-", PLAINTEXT_NAMES) as (cipher, mount_point):
        os.mkdir(os.path.join(cipher, "d"))
        os.setxattr(os.path.join(cipher, "d"), "user.kmsfs.key-id", b"arn:aws:kms:us-east-1:999999999999:key/attacker")
        with foreground_mount(cipher, mount_point):
            with open(os.path.join(mount_point, "d", "new"), "w") as f:
                f.write("x")
            from test_mount import wrapped_key
            default = json.load(open(os.path.join(cipher, "kmsfs.conf")))["defaultKeyID"]
            assert wrapped_key(os.path.join(cipher, "d", "new"))[1] == default


def test_directory_keys_only_by_the_owner_and_only_allowed_ones(shared):
    cipher, m = shared
    tmp = os.path.join(m, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    default = json.load(open(os.path.join(cipher, "kmsfs.conf")))["defaultKeyID"]
    # Not the owner of the directory: EPERM, even for the default key.
    result = as_user(NOBODY, NOBODY, f"setfattr -n user.kmsfs.key-id -v {default} {tmp}")
    assert result.returncode != 0 and "Operation not permitted" in result.stderr
    # The owner, but a key the volume does not allow: EACCES.
    with pytest.raises(PermissionError):
        os.setxattr(tmp, "user.kmsfs.key-id", b"arn:aws:kms:local:111122223333:key/elsewhere")
    os.setxattr(tmp, "user.kmsfs.key-id", default.encode())


def test_a_moved_volume_mounts_and_a_copy_does_not_reach_the_old_store():
    with new_volume("kmsfs-move-", PLAINTEXT_NAMES) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            with open(os.path.join(mount_point, "f"), "w") as f:
                f.write("travels")
        root = os.path.dirname(cipher)
        os.rename(cipher, os.path.join(root, "moved"))
        os.rename(cipher + ".keys", os.path.join(root, "moved.keys"))
        with foreground_mount(os.path.join(root, "moved"), mount_point):
            assert open(os.path.join(mount_point, "f")).read() == "travels"
        # A copy of the backing directory alone finds no store, and says so.
        shutil.copytree(os.path.join(root, "moved"), os.path.join(root, "copy"))
        result = subprocess.run([KMSFS, "mount", os.path.join(root, "copy"), mount_point], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "key store is not at" in result.stderr


def test_a_broken_key_service_fails_the_mount_with_its_reason(kmsd):
    env = kmsd.client_environment()
    key = remote_key(kmsd)
    with new_volume("kmsfs-broken-", PLAINTEXT_NAMES, *kmsd.volume_arguments(key), env=env) as (cipher, mount_point):
        def mount(environment, *extra):
            return subprocess.run([KMSFS, "mount", cipher, mount_point, *extra], capture_output=True, text=True, env=environment, timeout=120)
        wrong_secret = dict(env, AWS_SECRET_ACCESS_KEY="x" * 40)
        result = mount(wrong_secret)
        assert result.returncode == 1 and "refused these credentials" in result.stderr and "Signature" in result.stderr
        result = mount(env, "--region", "eu-west-3")
        assert result.returncode == 1 and not mounted(mount_point), result.stderr
        result = mount(env, "--kms-endpoint", "unix:///nonexistent/kmsd.sock")
        assert result.returncode == 1 and "cannot be reached" in result.stderr
        # Offline on purpose: mounted, and what needs keys waits for the service.
        result = mount(env, "--kms-endpoint", "unix:///nonexistent/kmsd.sock", "--allow-offline")
        assert result.returncode == 0 and mounted(mount_point)
        unmount(mount_point)
        kmsd.client().disable_key(KeyId=key)
        try:
            result = mount(env)
            assert result.returncode == 1 and "Disabled" in result.stderr
        finally:
            kmsd.client().enable_key(KeyId=key)
        assert mount(env).returncode == 0
        unmount(mount_point)


def test_the_endpoint_never_comes_from_the_backing_directory(kmsd, tmp_path):
    env = kmsd.client_environment()
    with new_volume("kmsfs-relay-", PLAINTEXT_NAMES, *kmsd.volume_arguments(remote_key(kmsd)), env=env) as (cipher, mount_point):
        # The attacker points kmsfs.conf at a relay of their own.
        rewrite_configuration(cipher, lambda c: c["keyService"]["remote"].update(endpoint="unix:///tmp/relay.sock"))
        with foreground_mount(cipher, mount_point, env=env):  # the machine's record wins: the real kmsd
            with open(os.path.join(mount_point, "f"), "w") as f:
                f.write("x")
        # On a machine with no record of the volume, kmsfs.conf alone names nothing.
        fresh = dict(env, KMSFS_CONFIG_DIR=str(tmp_path), AWS_REGION=REGION)
        result = subprocess.run([KMSFS, "mount", cipher, mount_point], capture_output=True, text=True, env=fresh, timeout=60)
        assert result.returncode == 1 and "never taken from the backing" in result.stderr
        with foreground_mount(cipher, mount_point, env=fresh, extra=["--kms-endpoint", "unix://" + kmsd.socket_path]):
            assert open(os.path.join(mount_point, "f")).read() == "x"


def test_more_files_than_the_daemon_has_descriptors():
    """Every inode the kernel knows holds a descriptor in the daemon, and the kernel forgets
    inodes only under memory pressure: a walk over more files than the descriptor limit once
    ended in EMFILE for every user of the mount — any user of a shared mount could cause it.
    The daemon now hands its least recently used names back to the kernel past a third of its limit."""
    with new_volume("kmsfs-descriptors-", PLAINTEXT_NAMES) as (cipher, mount_point):
        os.chmod(os.path.dirname(cipher), 0o755)
        walk_with_few_descriptors(cipher, mount_point)


def walk_with_few_descriptors(cipher, mount_point):
    with foreground_mount(cipher, mount_point, extra=("-o", "allow_other"), prefix=("prlimit", "--nofile=400:400")) as limited:
        os.chmod(mount_point, 0o777)
        script = """cd %s && mkdir many && cd many && i=0
            while [ $i -lt 1500 ]; do echo $i > f$i; i=$((i+1)); done
            ls -l | wc -l; cat f* | wc -l; ls -l | wc -l""" % mount_point
        walked = as_user(NOBODY, NOBODY, script)
        assert walked.returncode == 0 and walked.stdout.split() == ["1501", "1500", "1501"], walked.stdout + walked.stderr
        descriptors = len(os.listdir("/proc/%d/fd" % limited.pid))
        assert descriptors < 400
        with open(os.path.join(mount_point, "many", "f1234")) as f:
            assert f.read() == "1234\n"


def test_a_deep_walk_with_few_descriptors_does_not_crash_the_daemon():
    """A second review found this: an eviction pass counted the table when it ran, not when it
    was asked for; the kernel's FORGETs in between made the count negative and the daemon trap."""
    with new_volume("kmsfs-deep-fds-", PLAINTEXT_NAMES) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, prefix=("prlimit", "--nofile=300:300")) as daemon:
            for top in range(20):
                os.makedirs(os.path.join(mount_point, "d%d" % top, "a", "b", "c"))
                for index in range(60):
                    for path in ("f%d" % index, "a/b/c/g%d" % index):
                        with open(os.path.join(mount_point, "d%d" % top, path), "w") as f:
                            f.write("x")
            for _ in range(3):
                walked = subprocess.run(["find", mount_point], capture_output=True, text=True, timeout=120)
                assert walked.returncode == 0 and len(walked.stdout.splitlines()) == 1 + 20 * (4 + 120), walked.stderr
            assert daemon.poll() is None
