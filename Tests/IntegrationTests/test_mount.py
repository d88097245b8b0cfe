"""Real applications on a real kmsfs mount (embedded key service). Every mount is undone
(fusermount3 -u, then -uz, then SIGKILL of the daemon) when the fixture ends, pass or fail."""
import contextlib
import os
import sqlite3
import subprocess
import tarfile
import tempfile
import time

import pytest

KMSFS = os.environ.get("KMSFS_BIN") or os.path.join(os.path.dirname(__file__), "../../.build/debug/kmsfs")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")


def mounted(mount_point):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mount_point for line in f)


def wrapped_key(backing_path):
    """A backing file's key attribute, decoded: (file ID, key ARN, KMS ciphertext blob). The
    layout: format byte, 16-byte file ID, u16 ARN length + ARN, u16 blob length + blob."""
    value = os.getxattr(backing_path, "user.kmsfs.key")
    arn_end = 19 + int.from_bytes(value[17:19], "big")
    blob_length = int.from_bytes(value[arn_end:arn_end + 2], "big")
    return value[1:17], value[19:arn_end].decode(), value[arn_end + 2:arn_end + 2 + blob_length]


def unmount(mount_point):
    """fusermount3 -u, then -uz if it is still there (a busy mount)."""
    for flags in (["-u"], ["-uz"]):
        if mounted(mount_point):
            subprocess.run(["fusermount3", *flags, mount_point], capture_output=True)


@contextlib.contextmanager
def foreground_mount(cipher, mount_point, env=None, extra=(), prefix=()):
    """`kmsfs mount -f` (plus `extra` arguments, run through `prefix`, a command that execs it:
    prlimit) until the mount is up; afterwards unmounted and the daemon ended (SIGKILL if it does
    not end by itself), pass or fail. Yields the daemon.
    Its log goes to a file (a pipe nobody reads would stop a daemon that logs much)."""
    log = tempfile.TemporaryFile()
    daemon = subprocess.Popen([*prefix, KMSFS, "mount", "-f", cipher, mount_point, *extra], stdout=subprocess.DEVNULL,
                              stderr=log, env=env)

    def read_log():
        log.seek(0)
        return log.read()
    daemon.read_log = read_log  # the daemon's log so far, bytes (also after the mount ended)

    def logged():
        return read_log().decode(errors="replace")
    try:
        deadline = time.time() + 30
        while not mounted(mount_point):
            if daemon.poll() is not None:
                raise AssertionError("kmsfs mount exited: " + logged())
            if time.time() > deadline:
                daemon.kill()
                raise AssertionError("not mounted within 30 s: " + logged())
            time.sleep(0.02)
        yield daemon
    finally:
        unmount(mount_point)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


# For tests that find backing files by their plaintext names (kmsfs init encrypts names by
# default); the others run on the default, and test_names covers the names themselves.
PLAINTEXT_NAMES = "--plaintext-names"


def backing_path(cipher, path_in_mount):
    """Where a node of the mount is in the backing directory (its encrypted path on a volume with
    encrypted names), from the mount's user.kmsfs.backing-path attribute."""
    relative = os.getxattr(path_in_mount, "user.kmsfs.backing-path")
    return os.fsdecode(os.path.join(os.fsencode(cipher), relative))


@contextlib.contextmanager
def new_volume(prefix, *init_arguments, env=None):
    """A fresh volume (`kmsfs init`) and an empty mount point, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as root:
        cipher, mount_point = os.path.join(root, "cipher"), os.path.join(root, "mnt")
        os.mkdir(mount_point)
        # No terminal: a passphrase is never asked; the root key is unprotected unless chosen.
        subprocess.run([KMSFS, "init", cipher, *init_arguments], check=True, capture_output=True, env=env, stdin=subprocess.DEVNULL)
        yield cipher, mount_point


@pytest.fixture()
def volume():
    with new_volume("kmsfs-app-") as (cipher, mount_point), foreground_mount(cipher, mount_point):
        yield cipher, mount_point


def test_sqlite_integrity_after_10000_inserts(volume):
    cipher, mount_point = volume
    db = sqlite3.connect(os.path.join(mount_point, "app.sqlite"))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, blob BLOB)")
    with db:
        for i in range(10000):
            db.execute("INSERT INTO t (name, blob) VALUES (?, ?)", ("row %d" % i, os.urandom(i % 300)))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 10000
    db.close()
    with open(backing_path(cipher, os.path.join(mount_point, "app.sqlite")), "rb") as f:
        assert b"SQLite format 3" not in f.read()


def test_git_init_add_commit(volume):
    _, mount_point = volume
    repo = os.path.join(mount_point, "repo")
    os.mkdir(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    def git(*args):
        return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True, env=env).stdout
    git("init", "-q")
    with open(os.path.join(repo, "README"), "w") as f:
        f.write("hello from kmsfs\n")
    git("add", "README")
    git("commit", "-q", "-m", "first")
    assert "first" in git("log", "--oneline")
    assert git("fsck", "--strict") == ""


def test_untar_a_source_tree_and_diff(volume):
    _, mount_point = volume
    with tempfile.TemporaryDirectory() as scratch:
        archive = os.path.join(scratch, "sources.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(os.path.join(REPO, "Sources"), arcname="Sources")
            tar.add(os.path.join(REPO, "Tests"), arcname="Tests", filter=lambda info: None if "Fixtures" in info.name and info.name.endswith(".json") else info)
        subprocess.run(["tar", "-xf", archive, "-C", mount_point], check=True)
        expected = os.path.join(scratch, "expected")
        os.mkdir(expected)
        subprocess.run(["tar", "-xf", archive, "-C", expected], check=True)
        assert sorted(os.listdir(mount_point)) == ["Sources", "Tests"]
        for top in ("Sources", "Tests"):
            detail = subprocess.run(["diff", "-r", os.path.join(expected, top), os.path.join(mount_point, top)],
                                    capture_output=True, text=True)
            assert detail.returncode == 0, detail.stdout[:2000]


def test_large_directories_with_names_of_every_length_list_and_remove(volume):
    """readdir records are as long as their names: the daemon once read each name as a full
    256-byte array and crashed when a record ended its buffer at the end of a page (rm -rf of
    5 000 files on tmpfs). Names of every length shift the records across the buffer."""
    _, mount_point = volume
    directory = os.path.join(mount_point, "big")
    os.mkdir(directory)
    names = set()
    for index in range(4000):
        name = "%05d" % index + "n" * (index % 251)
        names.add(name)
        with open(os.path.join(directory, name), "wb"):
            pass
    for _ in range(3):
        assert set(os.listdir(directory)) == names
        listed = subprocess.run(["ls", "-l", directory], capture_output=True, text=True, check=True)
        assert len(listed.stdout.splitlines()) == len(names) + 1
    subprocess.run(["rm", "-rf", directory], check=True)
    assert os.listdir(mount_point) == []


@pytest.mark.parametrize("names", ["plaintext", "encrypted"])
def test_names_are_bytes_not_text(names):
    """A POSIX name is any bytes but '/' and NUL: Latin-1 and other non-UTF-8 names keep their
    bytes in the mount (and in the backing directory, with plaintext names), and two of them
    never share a file."""
    arguments = [PLAINTEXT_NAMES] if names == "plaintext" else []
    with new_volume("kmsfs-bytes-", *arguments) as (cipher, mount_point), foreground_mount(cipher, mount_point):
        check_names_are_bytes(cipher, mount_point, names == "plaintext")


def check_names_are_bytes(cipher, mount_point, plaintext):
    names = [b"caf\xe9", b"caf\xef", b"\xff\xfe", b"plain", "\u00e9t\u00e9".encode()] + \
        [bytes([value]) * 3 for value in range(1, 256) if value not in (ord("/"), ord("."))]
    for index, name in enumerate(names):
        with open(os.path.join(mount_point.encode(), name), "wb") as f:
            f.write(b"%d" % index)
    assert sorted(os.listdir(mount_point.encode())) == sorted(names)
    stored = sorted(n for n in os.listdir(cipher.encode()) if not n.startswith(b"kmsfs."))
    assert (stored == sorted(names)) == plaintext
    for index, name in enumerate(names):
        with open(os.path.join(mount_point.encode(), name), "rb") as f:
            assert f.read() == b"%d" % index, name
    os.rename(os.path.join(mount_point.encode(), b"caf\xe9"), os.path.join(mount_point.encode(), b"d\xe9j\xe0"))
    assert b"d\xe9j\xe0" in os.listdir(mount_point.encode()) and b"caf\xe9" not in os.listdir(mount_point.encode())
    subprocess.run(["rm", "-rf", "--", *[os.path.join(mount_point.encode(), n) for n in os.listdir(mount_point.encode())]], check=True)
    assert os.listdir(mount_point) == []


def test_kmsfs_umount_ends_the_daemon():
    with new_volume("kmsfs-umount-") as (cipher, mount_point), foreground_mount(cipher, mount_point) as daemon:
        with open(os.path.join(mount_point, "f"), "w") as f:
            f.write("x")
        subprocess.run([KMSFS, "umount", mount_point], check=True)
        assert daemon.wait(timeout=10) == 0
        assert not mounted(mount_point)
        assert subprocess.run([KMSFS, "umount", mount_point], capture_output=True).returncode != 0


def test_volume_on_kmsd_over_a_unix_socket(kmsd):
    """A volume whose keys come from a real kmsd over its Unix socket: files round-trip, and the
    wrapped key in the backing file's xattr decrypts at kmsd only with that file's context."""
    import json
    client = kmsd.client()
    key = client.create_key(Description="kmsfs volume")["KeyMetadata"]
    client.create_alias(AliasName="alias/volume", TargetKeyId=key["KeyId"])
    env = kmsd.client_environment()
    init = kmsd.volume_arguments("alias/volume")
    with new_volume("kmsfs-remote-", *init, env=env) as (cipher, mount_point):
        with open(os.path.join(cipher, "kmsfs.conf")) as f:
            config = json.load(f)
        assert config["defaultKeyID"] == key["Arn"] and "remote" in config["keyService"]
        with foreground_mount(cipher, mount_point, env=env):
            # Sizes around the 16 KiB chunk boundaries, each file with its own key from kmsd.
            for size in (0, 1, 16383, 16384, 16385, 32768, 70000, (1 << 20) + 1):
                payload = os.urandom(size)
                with open(os.path.join(mount_point, "size-%d.bin" % size), "wb") as f:
                    f.write(payload)
                with open(os.path.join(mount_point, "size-%d.bin" % size), "rb") as f:
                    assert f.read() == payload, size
            payload = os.urandom(70000)
            with open(os.path.join(mount_point, "remote.bin"), "wb") as f:
                f.write(payload)
        # After a remount (keys unwrapped again by kmsd) the bytes are the same.
        with foreground_mount(cipher, mount_point, env=env):
            with open(os.path.join(mount_point, "remote.bin"), "rb") as f:
                assert f.read() == payload
            stored = backing_path(cipher, os.path.join(mount_point, "remote.bin"))
        file_id, arn, blob = wrapped_key(stored)
        assert arn == key["Arn"]
        context = {"kmsfs:volume": config["volumeID"], "kmsfs:file": file_id.hex()}
        assert len(client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]) == 32
        from botocore.exceptions import ClientError
        with pytest.raises(ClientError) as excinfo:
            client.decrypt(CiphertextBlob=blob, EncryptionContext=dict(context, **{"kmsfs:file": "00" * 16}))
        assert excinfo.value.response["Error"]["Code"] == "InvalidCiphertextException"
