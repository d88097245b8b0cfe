"""Model check: one seeded random sequence of POSIX operations applied to a kmsfs mount and to a
plain directory side by side; after every step the two must agree (the operation's outcome —
success or the same errno — and the state it touched), and every 200 steps the whole trees must
be identical (names, types, sizes, modes, link counts, contents, symlink targets, user xattrs).
A remount at the end must keep everything. KMSFS_MODEL_OPS sets the length (CI: 3 000; the soak
runs 100 000); KMSFS_MODEL_SEED the seed; KMSFS_MODEL_OPTIONS extra mount options."""
import errno
import os
import random
import stat

import pytest

from test_mount import foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")

OPERATIONS = int(os.environ.get("KMSFS_MODEL_OPS", "3000"))
SEED = int(os.environ.get("KMSFS_MODEL_SEED", "20261123"))
NAMES = ["a", "b", "c", "d", "e"]
DIRS = ["", "x", "x/y", "z"]


def snapshot(root):
    """Everything the model promises about a tree, keyed by relative path."""
    state = {}
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(subdirs + files):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            entry = [stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode)]
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as f:
                    entry += [info.st_size, info.st_nlink, f.read()]
            elif stat.S_ISLNK(info.st_mode):
                entry.append(os.readlink(path))
            if not stat.S_ISLNK(info.st_mode):
                entry.append(sorted((n, os.getxattr(path, n)) for n in os.listxattr(path) if n.startswith("user.")))
            state[os.path.relpath(path, root)] = entry
    return state


class Runner:
    """Applies one operation to both trees and returns each side's outcome."""

    def __init__(self, roots, rng):
        self.roots = roots
        self.rng = rng

    def path(self, kind="file"):
        directory = self.rng.choice(DIRS)
        return os.path.join(directory, self.rng.choice(NAMES)) if kind == "file" else directory

    def both(self, action):
        outcomes = []
        for root in self.roots:
            try:
                outcomes.append(("ok", action(root)))
            except OSError as error:
                outcomes.append(("error", error.errno))
        return outcomes

    def step(self):
        """One operation; every random choice is made before it runs on either side."""
        rng = self.rng
        p, q, directory = self.path(), self.path(), self.path("dir")
        data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 100, 4096, 16384, 16385, 40000])))
        offset = rng.choice([0, 1, 4095, 16383, 16384, 20000, 70000])
        length = rng.choice([0, 1, 5000, 16384, 16385, 50000])
        mode = rng.choice([0o600, 0o644, 0o640])
        name = "user.k%d" % rng.randrange(3)
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))

        def write(root):
            fd = os.open(os.path.join(root, p), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                return os.pwrite(fd, data, offset)
            finally:
                os.close(fd)

        def append(root):
            with open(os.path.join(root, p), "ab") as f:
                return f.write(data)

        def read(root):
            fd = os.open(os.path.join(root, p), os.O_RDONLY)
            try:
                return os.pread(fd, length, offset)
            finally:
                os.close(fd)

        def create_exclusive(root):
            os.close(os.open(os.path.join(root, p), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))

        actions = [
            (25, write),
            (8, append),
            (15, read),
            (8, lambda root: os.truncate(os.path.join(root, p), length + offset)),
            (5, create_exclusive),
            (6, lambda root: os.unlink(os.path.join(root, p))),
            (8, lambda root: os.rename(os.path.join(root, p), os.path.join(root, q))),
            (3, lambda root: os.mkdir(os.path.join(root, directory or "x"))),
            (2, lambda root: os.rmdir(os.path.join(root, directory or "z"))),
            (4, lambda root: os.link(os.path.join(root, p), os.path.join(root, q))),
            (3, lambda root: os.symlink("target-" + q, os.path.join(root, p))),
            (5, lambda root: os.chmod(os.path.join(root, p), mode)),
            (4, lambda root: os.setxattr(os.path.join(root, p), name, value)),
            (2, lambda root: os.removexattr(os.path.join(root, p), name)),
            (2, lambda root: sorted(os.listdir(os.path.join(root, directory)))),
        ]
        pick = rng.randrange(sum(weight for weight, _ in actions))
        for weight, action in actions:
            if pick < weight:
                break
            pick -= weight
        return self.both(action), p, q


def test_mount_and_plain_directory_agree(tmp_path):
    extra = os.environ.get("KMSFS_MODEL_OPTIONS", "").split()
    plain = tmp_path / "plain"
    plain.mkdir()
    for d in DIRS[1:]:
        (plain / d).mkdir(parents=True, exist_ok=True)
    with new_volume("kmsfs-model-") as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, extra=extra):
            for d in DIRS[1:]:
                os.makedirs(os.path.join(mount_point, d), exist_ok=True)
            runner = Runner([mount_point, str(plain)], random.Random(SEED))
            for number in range(OPERATIONS):
                (mounted, reference), p, q = runner.step()
                assert mounted == reference, "step %d (%s, %s): mount %r, plain %r" % (number, p, q, mounted, reference)
                if number % 200 == 199:
                    assert snapshot(mount_point) == snapshot(str(plain)), "trees differ after step %d" % number
            final = snapshot(str(plain))
            assert snapshot(mount_point) == final
        with foreground_mount(cipher, mount_point, extra=extra):
            assert snapshot(mount_point) == final
