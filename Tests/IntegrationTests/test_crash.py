"""Crash trials: a writer workload (writes, appends, truncations, creates, unlinks, renames,
fsyncs) on a mount whose daemon is killed with SIGKILL at a random moment; after each remount:

- every file opens (its key unwraps: no file holds data without a usable key) and has a size a
  file can have;
- every durable byte is there — fsynced bytes with the writeback cache; without it, every byte of
  every write(2) that returned (it reached the backing file before the reply);
- no chunk fails authentication unless the file was changed there since its bytes became
  durable (the operations a crash may cut short), counting the final chunks the change moved;
- `kmsfs fsck`, run between the crash and the remount, names exactly the chunks that the mount
  then refuses, and no file as unreadable.

What a crash may tear is stated in docs/FORMAT.md ("Crashes"). The trials run on one volume,
which carries its files from trial to trial (files with torn chunks are removed after being
counted). KMSFS_CRASH_TRIALS sets the trials per cache mode (CI 10; the soak 100),
KMSFS_CRASH_SEED the seed, KMSFS_CRASH_REPORT a JSON file for the figures."""
import errno
import json
import os
import random
import re
import signal
import subprocess
import threading

import pytest

from test_mount import KMSFS, foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")

TRIALS = int(os.environ.get("KMSFS_CRASH_TRIALS", "10"))
SEED = int(os.environ.get("KMSFS_CRASH_SEED", "20261124"))
CHUNK = 16384
NAMES = ["a", "b", "c", "d", "e", "f"]
DIRS = ["", "x"]


class FileModel:
    """What one file must hold: its current content as written, the durable content (as of the
    last fsync, or the last returned write without the writeback cache) and the byte ranges
    changed since then. `moved_end` ranges include the chunk holding their end (a change of
    the file's end re-seals the final chunk there)."""

    def __init__(self):
        self.content = bytearray()
        self.durable = b""
        self.changed = []  # (start, end, moved_end)

    def mark_durable(self):
        self.durable = bytes(self.content)
        self.changed = []

    def write(self, offset, data):
        size = len(self.content)
        end = offset + len(data)
        self.changed.append((min(offset, size), end, end >= size))
        if end > size:
            self.content.extend(bytes(end - size))
        self.content[offset:end] = data

    def truncate(self, length):
        size = len(self.content)
        self.changed.append((min(size, length), max(size, length), True))
        if length < size:
            del self.content[length:]
        else:
            self.content.extend(bytes(length - size))

    def may_tear(self, chunk):
        for start, end, moved_end in self.changed:
            last = end // CHUNK if moved_end else (end - 1) // CHUNK
            if start // CHUNK <= chunk <= last:
                return True
        return False

    def unchanged_durable_ranges(self):
        """The byte ranges of the durable content that nothing changed since."""
        position = 0
        for start, end, _ in sorted(self.changed):
            if start > position:
                yield position, min(start, len(self.durable))
            position = max(position, end)
            if position >= len(self.durable):
                return
        if position < len(self.durable):
            yield position, len(self.durable)


class Writer:
    def __init__(self, root, files, rng, durable_writes):
        self.root, self.files, self.rng = root, files, rng
        self.durable_writes = durable_writes  # no writeback cache: a returned write is durable
        # A namespace operation in flight: its kind and the models of its paths before it.
        self.in_flight = None
        # Files stay open from operation to operation, as in an application: close(2) through
        # FUSE writes dirty pages back, so closing after each write would make every write durable.
        self.fds = {}

    def fd(self, path):
        if path not in self.fds:
            self.fds[path] = os.open(os.path.join(self.root, path), os.O_RDWR)
        return self.fds[path]

    def close_all(self):
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass  # the mount is gone
        self.fds.clear()

    def path(self):
        return os.path.join(self.rng.choice(DIRS), self.rng.choice(NAMES))

    def namespace(self, kind, paths, action):
        """Runs a create, unlink or rename whose effect on the model is already made; if the
        crash cuts it short, the check finds out from the tree whether it happened."""
        self.in_flight = (kind, paths)
        action()
        self.in_flight = None

    def step(self):
        """One operation. The model changes before the operation runs, so that an operation cut
        short by the crash counts as a change."""
        rng = self.rng
        p = self.path()
        model = self.files.get(p)
        full = os.path.join(self.root, p)
        kind = rng.choices(["write", "append", "truncate", "fsync", "create", "unlink", "rename"],
                           [30, 15, 10, 15, 10, 5, 8])[0]
        if model is None or kind == "create":
            if model is not None:
                return
            kind, before = "create", {p: None}
            self.files[p] = FileModel()
            def create():
                self.fds[p] = os.open(full, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            self.namespace(kind, before, create)
        elif kind in ("write", "append"):
            data = rng.randbytes(rng.choice([1, 100, 4096, 16384, 16385, 40000, rng.randrange(1, 70000)]))
            offset = len(model.content) if kind == "append" else rng.randrange(0, 200000)
            model.write(offset, data)
            written = os.pwrite(self.fd(p), data, offset)
            if written != len(data):  # cut short by the crash (checked by the caller)
                raise OSError(errno.EIO, "short write: %d of %d bytes" % (written, len(data)))
        elif kind == "truncate":
            length = rng.randrange(0, 200000)
            model.truncate(length)
            os.ftruncate(self.fd(p), length)
        elif kind == "fsync":
            os.fsync(self.fd(p))
            model.mark_durable()
        elif kind == "unlink":
            if p in self.fds:
                os.close(self.fds.pop(p))  # writes back: the model's content becomes durable
                model.mark_durable()
            del self.files[p]
            self.namespace(kind, {p: model}, lambda: os.unlink(full))
        elif kind == "rename":
            q = self.path()
            if q == p:
                return
            before = {p: model, q: self.files.get(q)}
            self.files[q] = self.files.pop(p)
            self.namespace(kind, before, lambda: os.rename(full, os.path.join(self.root, q)))
            if q in self.fds:
                os.close(self.fds.pop(q))  # the replaced file's descriptor
            if p in self.fds:
                self.fds[q] = self.fds.pop(p)
        if self.durable_writes and p in self.files:
            self.files[p].mark_durable()


def read_chunks(path, size):
    """Each chunk of the file read alone (no read-ahead): a list of its bytes (None where
    unreadable) and the indices of the chunks that fail authentication (EIO). A read that ends
    exactly at the end of the file also authenticates the empty final chunk after it; one byte
    less tells the two apart."""
    chunks, failed = [], []
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for index in range(size // CHUNK + 1):
            offset = index * CHUNK
            length = min(CHUNK, size - offset)
            try:
                chunks.append(os.pread(fd, length, offset) if length else b"")
                continue
            except OSError as error:
                assert error.errno == errno.EIO, (path, index, error)
            chunks.append(None)
            if length == CHUNK and offset + CHUNK == size:
                try:
                    os.pread(fd, CHUNK - 1, offset)
                    failed.append(index + 1)
                    continue
                except OSError:
                    pass
            failed.append(index)
    finally:
        os.close(fd)
    return chunks, failed


def fsck_torn_chunks(cipher):
    """`kmsfs fsck`'s verdict on the unmounted volume: {path: set of failed chunk indices}."""
    done = subprocess.run([KMSFS, "fsck", cipher], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 4), done
    torn = {}
    for line in done.stdout.splitlines()[:-1]:
        assert line.startswith("DAMAGED "), line  # never UNREADABLE: every key unwraps, every size is valid
        path, verdict = line[len("DAMAGED "):].split(": ", 1)
        chunks = torn.setdefault(path, set())
        for first, last in re.findall(r"(\d+)-(\d+)", verdict.split(";")[0] if verdict.startswith("bytes") else ""):
            chunks.update(range(int(first) // CHUNK, int(last) // CHUNK + 1))
        end = re.search(r"its end at byte (\d+) fails", verdict)
        if end:
            chunks.add(int(end.group(1)) // CHUNK)
    assert (done.returncode == 4) == bool(torn), done
    return torn


def settle(files, in_flight, present):
    """Makes the model match the namespace operation the crash cut short, as the tree shows it
    went: a create happened if its file is there, an unlink or rename if its source is gone."""
    if in_flight is None:
        return
    kind, before = in_flight
    source = next(iter(before))
    happened = (source in present) == (kind == "create")
    if not happened:
        for path, model in before.items():
            if model is None:
                files.pop(path, None)
            else:
                files[path] = model


def check(root, files, in_flight, fsck_torn):
    """The remounted tree against the model and fsck's verdict. Returns the number of torn
    chunks; removes the files that have them and makes what was read the new durable content
    of the others."""
    present = set()
    for directory in DIRS:
        for name in os.listdir(os.path.join(root, directory)):
            if os.path.isfile(os.path.join(root, directory, name)):
                present.add(os.path.join(directory, name))
    settle(files, in_flight, present)
    assert present == set(files), "files present %r, expected %r" % (sorted(present), sorted(files))
    assert set(fsck_torn) <= present, (fsck_torn, present)
    torn = 0
    for p in sorted(present):
        full = os.path.join(root, p)
        model = files[p]
        size = os.stat(full).st_size
        chunks, failed = read_chunks(full, size)
        # fsck names what the mount refuses. It may name one chunk more: an empty final chunk
        # behind a failing last full chunk (or in an empty file), which no read can single out.
        named, final = fsck_torn.get(p, set()), size // CHUNK
        hidden = {final} if size % CHUNK == 0 and (size == 0 or final - 1 in failed) else set()
        assert set(failed) <= named <= set(failed) | hidden, "%s: the mount refuses chunks %r, fsck named %r" % (
            p, failed, named)
        failed = sorted(named)
        for index in failed:
            assert model.may_tear(index), "%s: chunk %d fails authentication but was not being changed (changes %r)" % (
                p, index, model.changed)
        for start, end in model.unchanged_durable_ranges():
            assert end <= size, "%s: durable bytes up to %d, but the size is %d" % (p, end, size)
            for index in range(start // CHUNK, (end - 1) // CHUNK + 1):
                if chunks[index] is None:
                    continue
                low, high = max(start, index * CHUNK), min(end, (index + 1) * CHUNK)
                assert chunks[index][low - index * CHUNK:high - index * CHUNK] == model.durable[low:high], (
                    "%s: durable bytes %d..%d differ" % (p, low, high))
        if failed:
            torn += len(failed)
            os.unlink(full)
            del files[p]
        else:
            model.content = bytearray(b"".join(chunks))
            model.mark_durable()
    return torn


@pytest.mark.parametrize("cache", ["writeback", "no_writeback_cache"])
def test_sigkill_at_random_moments(cache):
    rng = random.Random(SEED + (cache == "writeback"))
    extra = [] if cache == "writeback" else ["-o", "no_writeback_cache"]
    files, figures = {}, {"trials": TRIALS, "operations": 0, "torn_chunks": 0, "trials_with_torn_chunks": 0}
    with new_volume("kmsfs-crash-", "--chunk-size", str(CHUNK)) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, extra=extra):
            os.mkdir(os.path.join(mount_point, "x"))
        for trial in range(TRIALS):
            writer = Writer(mount_point, files, rng, durable_writes=cache != "writeback")
            with foreground_mount(cipher, mount_point, extra=extra) as daemon:
                killer = threading.Timer(rng.uniform(0.05, 1.0), lambda: daemon.send_signal(signal.SIGKILL))
                killer.start()
                try:
                    while daemon.poll() is None:
                        writer.step()
                        figures["operations"] += 1
                except OSError as error:
                    # Only the crash may stop the writer.
                    try:
                        daemon.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        raise AssertionError("trial %d: %r while the daemon was alive" % (trial, error))
                finally:
                    killer.cancel()
                    killer.join()
                    writer.close_all()
                assert daemon.wait(timeout=10) == -signal.SIGKILL
            fsck_torn = fsck_torn_chunks(cipher)
            with foreground_mount(cipher, mount_point, extra=extra):
                torn = check(mount_point, files, writer.in_flight, fsck_torn)
            figures["torn_chunks"] += torn
            figures["trials_with_torn_chunks"] += torn > 0
    if os.environ.get("KMSFS_CRASH_REPORT"):
        with open(os.environ["KMSFS_CRASH_REPORT"], "a") as report:
            report.write(json.dumps(dict(figures, cache=cache)) + "\n")
