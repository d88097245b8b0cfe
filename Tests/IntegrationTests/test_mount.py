"""Real applications on a real kmsfs mount (embedded key service). Every mount is undone
(fusermount3 -u, then -uz, then SIGKILL of the daemon) when the fixture ends, pass or fail."""
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


@pytest.fixture()
def volume():
    with tempfile.TemporaryDirectory(prefix="kmsfs-app-") as root:
        cipher, mount_point = os.path.join(root, "cipher"), os.path.join(root, "mnt")
        os.mkdir(mount_point)
        subprocess.run([KMSFS, "init", cipher], check=True, capture_output=True)
        daemon = subprocess.Popen([KMSFS, "mount", cipher, mount_point], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 20
            while not mounted(mount_point):
                assert daemon.poll() is None and time.time() < deadline, daemon.stderr.read()
                time.sleep(0.02)
            yield cipher, mount_point
        finally:
            for flags in (["-u"], ["-uz"]):
                if mounted(mount_point):
                    subprocess.run(["fusermount3", *flags, mount_point], capture_output=True)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


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
    with open(os.path.join(cipher, "app.sqlite"), "rb") as f:
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


def test_kmsfs_umount_ends_the_daemon():
    with tempfile.TemporaryDirectory(prefix="kmsfs-umount-") as root:
        cipher, mount_point = os.path.join(root, "cipher"), os.path.join(root, "mnt")
        os.mkdir(mount_point)
        subprocess.run([KMSFS, "init", cipher], check=True, capture_output=True)
        daemon = subprocess.Popen([KMSFS, "mount", cipher, mount_point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while not mounted(mount_point):
                assert daemon.poll() is None and time.time() < deadline
                time.sleep(0.02)
            with open(os.path.join(mount_point, "f"), "w") as f:
                f.write("x")
            subprocess.run([KMSFS, "umount", mount_point], check=True)
            assert daemon.wait(timeout=10) == 0
            assert not mounted(mount_point)
            assert subprocess.run([KMSFS, "umount", mount_point], capture_output=True).returncode != 0
        finally:
            if mounted(mount_point):
                subprocess.run(["fusermount3", "-uz", mount_point], capture_output=True)
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
