"""Tampering with backing files, read through the real kernel: zero silent corruptions.

Genuine files of varied sizes are written through a mount (chunk size 4096). While unmounted,
N mutated copies are made, each a clone of a genuine backing file (bytes and key attribute,
under a new name) with ONE seeded random change, as someone with write access to the backing
directory could make it: a bit flipped anywhere (header, nonce, ciphertext, tag), a cut, an
extension, a chunk zeroed, two chunks swapped, a chunk from another file (another key, or the
same key from another version of the same file), header fields edited, the key attribute
flipped, cut, extended, swapped or removed, the whole file replaced by another genuine one (with
or without its attribute). Then one mount, which has never seen these files (the kernel sends
no READ for a file it believes empty and caches attributes and pages, so nothing is changed
under a live mount), and every file is read with open/read, with mmap (in a child process: a
failed page is SIGBUS there) and stat.

Each outcome must be an error (EIO; EACCES where the key attribute names a key the key service
does not know) or exactly the bytes of a file it may legitimately be: its source, a genuine
file it is now byte for byte (bytes and attribute: a whole file moved with its attribute), or,
for a chunk of another version of the same file put at its own index, that mix (rollback of a
run of chunks: undetectable by design, docs/FORMAT.md "Threat model"). Never other bytes, never
a short or empty read of a non-empty file.

KMSFS_MOUNT_TAMPER_MUTATIONS sets N (2000; the soak 10000), KMSFS_MOUNT_TAMPER_SEED the seed,
KMSFS_MOUNT_TAMPER_REPORT a JSON file for the counts. The per-chunk overhead (nonce and tag) is
inferred from the genuine files, not assumed."""
import collections
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from test_adversaries import clone
from test_mount import backing_path, foreground_mount, mounted, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root")

MUTATIONS = int(os.environ.get("KMSFS_MOUNT_TAMPER_MUTATIONS", "2000"))
SEED = int(os.environ.get("KMSFS_MOUNT_TAMPER_SEED", "20261129"))
REPORT = os.environ.get("KMSFS_MOUNT_TAMPER_REPORT")
CHUNK = 4096
HEADER = 32
TAG = 16  # only to name the part of a chunk a flipped bit is in; nothing depends on it
ATTRIBUTE = "user.kmsfs.key"
# What a refused file may fail with: EIO for anything that cannot be trusted (format, chunks,
# a malformed or foreign key attribute, a blob the key service will not unwrap), EACCES when the
# attribute names a key the key service does not have (KMSClientError.notFound).
REFUSALS = {errno.EIO, errno.EACCES}

# Genuine files: (name, size). "v-<name>" files are a second version of <name>: the same
# header (file ID) and key, other contents written through the mount.
SIZES = [("empty", 0), ("one", 1), ("small", 100), ("under", CHUNK - 1), ("exact", CHUNK),
         ("over", CHUNK + 1), ("two-under", 2 * CHUNK - 1), ("two", 2 * CHUNK), ("two-over", 2 * CHUNK + 1),
         ("three-and-a-bit", 3 * CHUNK + 1000), ("four", 4 * CHUNK), ("another-three", 3 * CHUNK + 17)]
VERSIONED = ["small", "over", "two-over", "three-and-a-bit"]

# Reads files through mmap, one forked child per file so that SIGBUS (a page whose read
# failed) ends that child only. Input: a JSON list of paths; output: one JSON object per path.
MMAP_READER = r"""
import hashlib, json, mmap, os, sys
results = []
for path in json.load(sys.stdin):
    entry = {}
    try:
        size = os.stat(path).st_size
    except OSError as error:
        results.append({"stat_errno": error.errno})
        continue
    entry["size"] = size
    if size > 0:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as view:
                        data = view[:]
                    result = {"sha": hashlib.sha256(data).hexdigest(), "length": len(data)}
                finally:
                    os.close(fd)
            except OSError as error:
                result = {"errno": error.errno}
            os.write(w, json.dumps(result).encode())
            os._exit(0)
        os.close(w)
        answer = b""
        while True:
            part = os.read(r, 65536)
            if not part:
                break
            answer += part
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            entry["signal"] = os.WTERMSIG(status)
        else:
            entry.update(json.loads(answer))
    results.append(entry)
json.dump(results, sys.stdout)
"""


def sha(data):
    return hashlib.sha256(data).hexdigest()


def mmap_read(paths):
    """stat and mmap-read `paths` in a child process: one dict per path (size, then sha and
    length, or errno at open/mmap, or the signal that ended the reader, e.g. SIGBUS)."""
    if not paths:
        return []
    result = subprocess.run([sys.executable, "-c", MMAP_READER], input=json.dumps(paths), capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def read_through(path):
    """The whole file by open/read (as cat does), or the errno of the first failure."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        return error.errno
    try:
        parts = []
        while True:
            part = os.read(fd, 65536)
            if not part:
                return b"".join(parts)
            parts.append(part)
    except OSError as error:
        return error.errno
    finally:
        os.close(fd)


class Genuine:
    def __init__(self, name, plain, data, attribute, overhead):
        self.name, self.plain, self.data, self.attribute = name, plain, data, attribute
        self.sha = sha(plain)
        full, rest = divmod(len(plain), CHUNK)
        cipher = CHUNK + overhead
        # Byte ranges of the chunks in the backing file, and of their plaintext.
        self.chunks = [(HEADER + i * cipher, HEADER + (i + 1) * cipher) for i in range(full)]
        self.chunks.append((HEADER + full * cipher, HEADER + full * cipher + rest + overhead))
        self.plain_ranges = [(i * CHUNK, (i + 1) * CHUNK) for i in range(full)] + [(full * CHUNK, len(plain))]


def rebuild(data, chunks):
    """A backing file from its header and a list of chunk byte strings."""
    return data[:HEADER] + b"".join(chunks)


def split(g):
    return [g.data[a:b] for a, b in g.chunks]


def mutate(rng, g, pool, overhead):
    """One mutation of genuine file `g`: (kind, bytes, attribute or None if removed, description,
    extra candidates [(label, plaintext)] that the result may legitimately read as)."""
    data, attribute = g.data, g.attribute
    others = [o for o in pool if o.name != g.name]
    foreign = [o for o in others if o.attribute != g.attribute]  # another file ID and key
    versions = [o for o in others if o.attribute == g.attribute]  # the same file ID and key
    extra = []
    kind = rng.choice(["flip", "flip", "flip", "flip-any", "truncate", "truncate", "extend", "zero-chunk",
                       "swap-chunks", "splice-foreign", "splice-version", "header", "header", "attribute-flip",
                       "attribute-cut", "attribute-extend", "attribute-swap", "attribute-remove", "foreign-identity",
                       "replace", "replace"])
    if kind == "splice-version" and not versions:
        kind = "splice-foreign"
    if kind == "swap-chunks" and len(g.chunks) < 2:
        kind = "zero-chunk"

    if kind == "flip":
        region = rng.choice(["header", "nonce", "ciphertext", "tag"])
        index = rng.randrange(len(g.chunks))
        start, end = g.chunks[index]
        if region == "ciphertext" and end - start == overhead:  # an empty final chunk has none
            region = "tag"
        span = {"header": (0, HEADER), "nonce": (start, start + overhead - TAG),
                "ciphertext": (start + overhead - TAG, end - TAG), "tag": (end - TAG, end)}[region]
        at, bit = rng.randrange(*span), rng.randrange(8)
        mutated = bytearray(data)
        mutated[at] ^= 1 << bit
        where = "" if region == "header" else f" of chunk {index}/{len(g.chunks)}"
        return kind, bytes(mutated), attribute, f"bit {bit} of byte {at} flipped ({region}{where})", extra
    if kind == "flip-any":
        at, bit = rng.randrange(len(data)), rng.randrange(8)
        mutated = bytearray(data)
        mutated[at] ^= 1 << bit
        return kind, bytes(mutated), attribute, f"bit {bit} of byte {at} of {len(data)} flipped", extra
    if kind == "truncate":
        if rng.random() < 0.5:
            length = rng.randrange(len(data))
        else:
            points = {0, 1, HEADER - 1, HEADER, HEADER + 1, len(data) - 1, len(data) - TAG, len(data) - overhead}
            for start, end in g.chunks:
                points.update({start, start + 1, start + overhead - 1, start + overhead, start + overhead + 1,
                               end - 1, end - TAG, end - overhead})
            length = rng.choice(sorted(p for p in points if 0 <= p < len(data)))
        return kind, data[:length], attribute, f"cut to {length} of {len(data)} bytes", extra
    if kind == "extend":
        how = rng.choice(["random", "zeros", "own chunk", "empty final chunk of another file"])
        if how == "random":
            tail = rng.randbytes(rng.randint(1, 2 * (CHUNK + overhead)))
        elif how == "zeros":
            tail = bytes(rng.choice([1, overhead, CHUNK + overhead, rng.randint(1, 2 * (CHUNK + overhead))]))
        elif how == "own chunk":
            start, end = g.chunks[rng.randrange(len(g.chunks))]
            tail = data[start:end]
        else:
            donor = rng.choice([o for o in others if len(o.plain) % CHUNK == 0])
            tail = donor.data[slice(*donor.chunks[-1])]
        return kind, data + tail, attribute, f"extended by {len(tail)} bytes ({how})", extra
    if kind == "zero-chunk":
        index = rng.randrange(len(g.chunks))
        start, end = g.chunks[index]
        return kind, data[:start] + bytes(end - start) + data[end:], attribute, f"chunk {index}/{len(g.chunks)} zeroed", extra
    if kind == "swap-chunks":
        i, j = rng.sample(range(len(g.chunks)), 2)
        chunks = split(g)
        chunks[i], chunks[j] = chunks[j], chunks[i]
        return kind, rebuild(data, chunks), attribute, f"chunks {i} and {j} of {len(g.chunks)} swapped", extra
    if kind in ("splice-foreign", "splice-version"):
        donor = rng.choice(foreign if kind == "splice-foreign" else versions)
        i = rng.randrange(len(g.chunks))
        j = i if rng.random() < 0.5 and i < len(donor.chunks) else rng.randrange(len(donor.chunks))
        chunks = split(g)
        chunks[i] = donor.data[slice(*donor.chunks[j])]
        result = rebuild(data, chunks)
        if kind == "splice-version" and i == j:
            # Another version's chunk at its own index (same file ID, key, index and final flag):
            # a rollback of that chunk, which the format cannot see (docs/FORMAT.md).
            a, b = g.plain_ranges[i]
            extra.append((f"{g.name} with chunk {i} of {donor.name}", g.plain[:a] + donor.plain[a:b] + g.plain[b:]))
        key = "another key" if kind == "splice-foreign" else "the same key, another version"
        return kind, result, attribute, f"chunk {i}/{len(g.chunks)} replaced by chunk {j} of {donor.name} ({key})", extra
    if kind == "header":
        field = rng.choice(["any byte", "magic", "version", "flags", "chunk size", "file ID", "file ID of another file",
                            "reserved"])
        mutated = bytearray(data)
        if field == "any byte":
            at = rng.randrange(HEADER)
            mutated[at] ^= rng.randint(1, 255)
            field = f"byte {at}"
        elif field == "magic":
            mutated[rng.randrange(4)] ^= rng.randint(1, 255)
        elif field == "version":
            mutated[4:6] = rng.choice([0, 2, 0x100, 0xffff]).to_bytes(2, "big")
        elif field == "flags":
            mutated[6:8] = rng.choice([1, 2, 0x8000]).to_bytes(2, "big")
        elif field == "chunk size":
            mutated[8:12] = rng.choice([2048, 4097, 8192, 16384, 1 << 20, 0]).to_bytes(4, "big")
        elif field == "file ID":
            mutated[12 + rng.randrange(16)] ^= rng.randint(1, 255)
        elif field == "file ID of another file":
            mutated[12:28] = rng.choice(foreign).data[12:28]
        else:
            mutated[28:32] = rng.randint(1, 0xffffffff).to_bytes(4, "big")
        return kind, bytes(mutated), attribute, f"header {field} edited", extra
    if kind == "attribute-flip":
        arn_end = 19 + int.from_bytes(attribute[17:19], "big")
        region = rng.choice([("format", 0, 1), ("file ID", 1, 17), ("ARN length", 17, 19), ("ARN", 19, arn_end),
                             ("blob length", arn_end, arn_end + 2), ("blob", arn_end + 2, len(attribute))])
        at, bit = rng.randrange(region[1], region[2]), rng.randrange(8)
        value = bytearray(attribute)
        value[at] ^= 1 << bit
        return kind, data, bytes(value), f"key attribute: bit {bit} of byte {at} flipped ({region[0]})", extra
    if kind == "attribute-cut":
        length = rng.randrange(len(attribute))
        return kind, data, attribute[:length], f"key attribute cut to {length} of {len(attribute)} bytes", extra
    if kind == "attribute-extend":
        tail = rng.choice([b"\0", rng.randbytes(rng.randint(1, 64))])
        return kind, data, attribute + tail, f"key attribute extended by {len(tail)} bytes", extra
    if kind == "attribute-swap":
        donor = rng.choice(others)
        return kind, data, donor.attribute, f"key attribute of {donor.name}", extra
    if kind == "attribute-remove":
        return kind, data, None, "key attribute removed", extra
    if kind == "foreign-identity":
        # Header file ID and attribute of another file, consistent with each other: the key
        # unwraps (to the other file's key) and every chunk must fail under it.
        donor = rng.choice(foreign)
        return (kind, data[:12] + donor.data[12:28] + data[28:], donor.attribute,
                f"file ID and key attribute of {donor.name}", extra)
    # replace
    donor = rng.choice(others)
    with_attribute = rng.random() < 0.5
    return (kind, donor.data, donor.attribute if with_attribute else attribute,
            f"whole file replaced by {donor.name} ({'with' if with_attribute else 'without'} its key attribute)", extra)


def test_tampered_backing_files_never_read_as_other_bytes_through_the_kernel():
    started = time.monotonic()
    rng = random.Random(SEED)
    with new_volume("kmsfs-tamper-mount-", "--chunk-size", str(CHUNK)) as (cipher, mount_point):
        plains = {name: random.Random(f"{SEED}-{name}").randbytes(size) for name, size in SIZES}
        made_later = ["v-" + name for name in VERSIONED] + [f"t{index:05d}" for index in range(MUTATIONS)]
        with foreground_mount(cipher, mount_point):
            for name, plain in plains.items():
                with open(os.path.join(mount_point, name), "wb") as f:
                    f.write(plain)
            # What is made below in the backing directory while nothing is mounted gets its name
            # here (names are encrypted): its bytes and key attribute are then replaced.
            for name in made_later:
                open(os.path.join(mount_point, name), "wb").close()
            where = {name: backing_path(cipher, os.path.join(mount_point, name)) for name in list(plains) + made_later}
        for name in VERSIONED:  # a second version: same header and key, other contents
            clone(where[name], where["v-" + name])
            plains["v-" + name] = random.Random(f"{SEED}-v-{name}").randbytes(len(plains[name]))
        with foreground_mount(cipher, mount_point):
            for name in VERSIONED:
                with open(os.path.join(mount_point, "v-" + name), "r+b") as f:
                    f.write(plains["v-" + name])
            for name, plain in plains.items():
                assert read_through(os.path.join(mount_point, name)) == plain, name

        # The per-chunk overhead, from the backing sizes (the empty file is header + one empty
        # final chunk), checked against the size formula of every genuine file.
        overhead = os.path.getsize(where["empty"]) - HEADER
        assert overhead > TAG
        for name, plain in plains.items():
            full, rest = divmod(len(plain), CHUNK)
            assert os.path.getsize(where[name]) == HEADER + full * (CHUNK + overhead) + rest + overhead, name
        pool = []
        for name, plain in sorted(plains.items()):
            with open(where[name], "rb") as f:
                data = f.read()
            pool.append(Genuine(name, plain, data, os.getxattr(where[name], ATTRIBUTE), overhead))
        for name in VERSIONED:
            a, b = (next(g for g in pool if g.name == n) for n in (name, "v-" + name))
            assert a.data[:HEADER] == b.data[:HEADER] and a.attribute == b.attribute and a.data != b.data

        # N mutated copies, made while nothing is mounted.
        cases = []
        for index in range(MUTATIONS):
            g = rng.choice(pool)
            kind, data, attribute, description, extra = mutate(rng, g, pool, overhead)
            name = f"t{index:05d}"
            path = where[name]
            with open(path, "wb") as f:
                f.write(data)
            if attribute is not None:
                os.setxattr(path, ATTRIBUTE, attribute)
            else:
                os.removexattr(path, ATTRIBUTE)  # the placeholder's own
            # What it may read as: its source, any genuine file it now is byte for byte (bytes
            # and attribute), and the mixes of versions computed by `mutate`.
            candidates = {g.sha: g.name}
            for o in pool:
                if o.data == data and o.attribute == attribute:
                    candidates.setdefault(o.sha, o.name)
            for label, plain in extra:
                candidates.setdefault(sha(plain), label)
            cases.append({"name": name, "source": g.name, "kind": kind, "description": description,
                          "candidates": candidates})
        made = time.monotonic()

        corruptions = []
        outcomes = collections.Counter()
        by_kind = collections.defaultdict(collections.Counter)
        mmap_outcomes = collections.Counter()

        def judge_bytes(case, sha_, length, how, size=None):
            """None if these bytes are a legitimate reading of the case, else a complaint."""
            label = case["candidates"].get(sha_)
            if label is None:
                return f"{how} returned {length} bytes (sha256 {sha_[:16]}) that are no genuine file"
            if size is not None and size != length:
                return f"{how} returned {label} ({length} bytes) but stat says {size} bytes"
            return None

        with foreground_mount(cipher, mount_point) as daemon:
            paths = [os.path.join(mount_point, case["name"]) for case in cases]
            # mmap first for the even files, open/read first for the odd ones (the kernel drops
            # a file's cached pages at each open: kmsfs does not ask it to keep them).
            mapped = dict(zip(range(0, len(cases), 2), mmap_read(paths[0::2])))
            for index, case in enumerate(cases):
                path = paths[index]
                try:
                    size = os.stat(path).st_size
                except OSError as error:
                    size = None
                    if error.errno not in REFUSALS:
                        corruptions.append((case, f"stat failed with {errno.errorcode.get(error.errno, error.errno)}"))
                content = read_through(path)
                if isinstance(content, int):
                    outcome = "error " + errno.errorcode.get(content, str(content))
                    if content not in REFUSALS:
                        corruptions.append((case, f"open/read failed with unexpected {outcome}"))
                else:
                    complaint = judge_bytes(case, sha(content), len(content), "open/read", size)
                    label = case["candidates"].get(sha(content))
                    if complaint:
                        corruptions.append((case, complaint))
                        outcome = "CORRUPT"
                    elif label == case["source"]:
                        outcome = "genuine: its source"
                    elif label.startswith(case["source"] + " with chunk"):
                        outcome = "genuine: mix of versions (by design)"
                    else:
                        outcome = "genuine: another genuine file, byte for byte"
                    case["read"] = sha(content)
                outcomes[outcome] += 1
                by_kind[case["kind"]][outcome] += 1
            mapped.update(zip(range(1, len(cases), 2), mmap_read(paths[1::2])))
            for index, case in enumerate(cases):
                result = mapped[index]
                if "stat_errno" in result:
                    outcome = "stat error " + errno.errorcode.get(result["stat_errno"], str(result["stat_errno"]))
                    if result["stat_errno"] not in REFUSALS:
                        corruptions.append((case, "mmap reader: " + outcome))
                elif result["size"] == 0:
                    outcome = "not mapped (size 0)"
                elif "signal" in result:
                    outcome = "killed by " + signal.Signals(result["signal"]).name
                    if result["signal"] != signal.SIGBUS:
                        corruptions.append((case, "mmap reader " + outcome))
                elif "errno" in result:
                    outcome = "error " + errno.errorcode.get(result["errno"], str(result["errno"]))
                    if result["errno"] not in REFUSALS:
                        corruptions.append((case, "open for mmap failed with unexpected " + outcome))
                else:
                    complaint = judge_bytes(case, result["sha"], result["length"], "mmap", result["size"])
                    if complaint is None and case.get("read") not in (None, result["sha"]):
                        complaint = "mmap and open/read returned different genuine files"
                    if complaint:
                        corruptions.append((case, complaint))
                    outcome = "CORRUPT" if complaint else "genuine"
                mmap_outcomes[outcome] += 1

            # The genuine files still read, and the daemon is still there.
            for g in pool:
                assert read_through(os.path.join(mount_point, g.name)) == g.plain, g.name
            for g, result in zip(pool, mmap_read([os.path.join(mount_point, g.name) for g in pool])):
                assert result["size"] == len(g.plain), g.name
                assert len(g.plain) == 0 or result.get("sha") == g.sha, (g.name, result)
            assert mounted(mount_point) and daemon.poll() is None, "the daemon did not survive the reads"

        seconds = time.monotonic() - started
        summary = {"mutations": MUTATIONS, "seed": SEED, "chunk_overhead": overhead, "silent_corruptions": len(corruptions),
                   "open_read": dict(sorted(outcomes.items())), "mmap": dict(sorted(mmap_outcomes.items())),
                   "open_read_by_kind": {kind: dict(sorted(counts.items())) for kind, counts in sorted(by_kind.items())},
                   "seconds": round(seconds, 1), "seconds_making_copies": round(made - started, 1)}
        print(f"\ntamper through the mount: {MUTATIONS} mutations (seed {SEED}, chunk overhead {overhead}), "
              f"{len(corruptions)} silent corruptions; open/read {dict(sorted(outcomes.items()))}; "
              f"mmap {dict(sorted(mmap_outcomes.items()))}; {seconds:.1f} s")
        if REPORT:
            with open(REPORT, "w") as f:
                json.dump(summary, f, indent=2)
        listed = "\n".join(f"  {case['name']} from {case['source']}: {case['description']}: {complaint}"
                           for case, complaint in corruptions[:20])
        if corruptions:
            pytest.fail(f"{len(corruptions)} silent corruptions (seed {SEED}), the first:\n{listed}", pytrace=False)
