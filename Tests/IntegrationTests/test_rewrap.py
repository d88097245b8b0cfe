"""kmsfs rewrap, keys and shred-report on volumes whose keys come from a real kmsd: data keys
re-wrapped under another KMS key by ReEncrypt (contents untouched), offline and through a mount,
killed at random moments and resumed; what a key's loss would make unreadable, listed before and
confirmed by fsck after."""
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import KMSD
from test_adversaries import NOBODY, as_user
from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, new_volume, wrapped_key

FILES = 10_000


def kmsfs(*arguments, env, check=True):
    result = subprocess.run([KMSFS, *arguments], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def key_usage(cipher, env):
    """{key ARN: files} from `kmsfs keys`."""
    lines = kmsfs("keys", cipher, env=env).stdout.splitlines()
    assert lines[0].split("\t") == ["FILES", "STORED BYTES", "KMS KEY"]
    return {fields[2]: int(fields[0]) for fields in (line.split("\t") for line in lines[1:])}


def fill(mount_point, count):
    """`count` small files in 100 directories; returns {relative path: sha256}."""
    digests = {}
    for index in range(count):
        directory = "d%02d" % (index % 100)
        os.makedirs(os.path.join(mount_point, directory), exist_ok=True)
        payload = b"file %d " % index * (index % 7 + 1)
        with open(os.path.join(mount_point, directory, "f%05d" % index), "wb") as f:
            f.write(payload)
        digests["%s/f%05d" % (directory, index)] = hashlib.sha256(payload).hexdigest()
    return digests


def check_contents(mount_point, digests):
    for path, digest in digests.items():
        with open(os.path.join(mount_point, path), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, path


@pytest.fixture()
def two_keys(own_kmsd):
    client = own_kmsd.client()
    first = client.create_key(Description="rewrap source")["KeyMetadata"]["Arn"]
    second = client.create_key(Description="rewrap destination")["KeyMetadata"]["Arn"]
    client.create_alias(AliasName="alias/rewrap-destination", TargetKeyId=second)
    return own_kmsd, first, second


@contextlib.contextmanager
def two_key_volume(kmsd, first, second, prefix):
    """A volume on `kmsd` under `first` that also allows `second`: (cipher, mount point, env)."""
    env = kmsd.client_environment()
    with new_volume(prefix, PLAINTEXT_NAMES, *kmsd.volume_arguments(first), env=env) as (cipher, mount_point):
        kmsfs("allow-key", cipher, second, env=env)
        yield cipher, mount_point, env


def test_offline_rewrap_killed_and_resumed_leaves_every_file_readable_under_the_new_key(two_keys):
    kmsd, first, second = two_keys
    with two_key_volume(kmsd, first, second, "kmsfs-rewrap-") as (cipher, mount_point, env):
        with foreground_mount(cipher, mount_point, env=env):
            digests = fill(mount_point, FILES)
        contents_before = {path: os.stat(os.path.join(cipher, path)).st_mtime_ns for path in digests}
        assert key_usage(cipher, env) == {first: FILES}
        shred = kmsfs("shred-report", cipher, "--key", first, env=env)
        assert sorted(shred.stdout.split()) == sorted(digests)
        plan = kmsfs("rewrap", cipher, "--to", second, "--dry-run", env=env)
        assert "would re-wrap %d files" % FILES in plan.stdout

        # Killed at random moments: every file is under one key or the other, never neither.
        rng = random.Random(16)
        for _ in range(3):
            run = subprocess.Popen([KMSFS, "rewrap", cipher, "--to", second], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.5))
            run.send_signal(signal.SIGKILL)
            run.wait()
            usage = key_usage(cipher, env)
            assert set(usage) <= {first, second} and sum(usage.values()) == FILES, usage
        assert key_usage(cipher, env).get(second, 0) > 0, "three runs re-wrapped nothing"

        finished = kmsfs("rewrap", cipher, "--to", "alias/rewrap-destination", env=env)
        assert "0 failed" in finished.stdout
        assert key_usage(cipher, env) == {second: FILES}
        again = kmsfs("rewrap", cipher, "--to", "alias/rewrap-destination", env=env)
        assert "0 re-wrapped, %d already under the key" % FILES in again.stdout
        # Only the key attributes changed.
        assert {path: os.stat(os.path.join(cipher, path)).st_mtime_ns for path in digests} == contents_before
        assert all(wrapped_key(os.path.join(cipher, path))[1] == second for path in list(digests)[:50])
        with foreground_mount(cipher, mount_point, env=env):
            check_contents(mount_point, digests)
        # The source key can go: nothing needs it any more.
        assert kmsfs("shred-report", cipher, "--key", first, env=env).stdout == ""
        with open(os.path.join(cipher, "kmsfs.conf")) as f:
            volume_id = json.load(f)["volumeID"]
    kmsd.stop()
    trail = subprocess.run([KMSD, "audit", "tail", "--store", kmsd.store, "--key", second, "--limit", str(3 * FILES)],
                           check=True, capture_output=True, text=True).stdout
    records = [json.loads(line) for line in trail.splitlines() if line.startswith("{")]
    rewraps = [r for r in records if r["operation"] == "ReEncrypt" and not r.get("errorCode")]
    # One ReEncrypt per file (a file whose new attribute a kill lost is done twice).
    files = {json.dumps(r.get("encryptionContext"), sort_keys=True) for r in rewraps}
    assert len(files) == FILES and len(rewraps) >= FILES, (len(files), len(rewraps))
    assert all(r["encryptionContext"]["kmsfs:volume"] == volume_id for r in rewraps)


def test_online_rewrap_beside_a_writer_and_refused_to_others(two_keys):
    kmsd, first, second = two_keys
    with two_key_volume(kmsd, first, second, "kmsfs-rewrap-online-") as (cipher, mount_point, env):
        os.chmod(os.path.dirname(cipher), 0o755)
        with foreground_mount(cipher, mount_point, env=env, extra=("-o", "allow_other")):
            os.chmod(mount_point, 0o755)
            digests = fill(mount_point, 300)
            log = os.path.join(mount_point, "log")
            writer = subprocess.Popen(["sh", "-c", "i=0; while [ $i -lt 4000 ]; do echo line $i; i=$((i+1)); done >> " + log])
            # Another user may not move root's files to another key, even one the volume allows.
            refused = as_user(NOBODY, NOBODY, "%s rewrap %s --to %s --path d00" % (KMSFS, mount_point, second))
            assert refused.returncode == 4 and "FAILED" in refused.stdout, refused.stdout + refused.stderr
            assert key_usage(cipher, env).get(second, 0) == 0
            # A key the volume does not allow is refused outright.
            stranger = kmsd.client().create_key(Description="not allowed")["KeyMetadata"]["Arn"]
            outright = kmsfs("rewrap", mount_point, "--to", stranger, env=env, check=False)
            assert outright.returncode == 8 and "not a key this volume allows" in outright.stderr
            # Keys the volume does not allow, existing or not, are refused alike, without asking
            # the key service about them (no probing aliases through the mount).
            import errno
            for name in ("alias/does-not-exist", stranger, "a b\nforged log line"):
                with pytest.raises(OSError) as excinfo:
                    os.setxattr(os.path.join(mount_point, "d00", "f00000"), "user.kmsfs.rewrap", name.encode())
                assert excinfo.value.errno == errno.EKEYREJECTED, name
            done = kmsfs("rewrap", mount_point, "--to", second, env=env)
            writer.wait()
            assert "0 failed" in done.stdout
            kmsfs("rewrap", mount_point, "--to", second, env=env)  # the log may have been made meanwhile
            assert key_usage(cipher, env) == {second: len(digests) + 1}
            check_contents(mount_point, digests)
            with open(log) as f:
                assert f.read().splitlines() == ["line %d" % i for i in range(4000)]
        with foreground_mount(cipher, mount_point, env=env):
            check_contents(mount_point, digests)


def test_shred_report_lists_what_fsck_finds_unreadable_after_disable_key(two_keys):
    kmsd, first, second = two_keys
    with two_key_volume(kmsd, first, second, "kmsfs-shred-") as (cipher, mount_point, env):
        with foreground_mount(cipher, mount_point, env=env):
            digests = fill(mount_point, 400)
        kmsfs("rewrap", cipher, "--to", second, "--path", "d07", env=env)
        kmsfs("rewrap", cipher, "--to", second, "--path", "d42/f00042", env=env)
        report = kmsfs("shred-report", cipher, "--key", second.split("/")[-1], env=env)
        listed = sorted(report.stdout.split())
        assert listed == sorted(p for p in digests if p.startswith("d07/") or p == "d42/f00042")
        assert "%d of %d files" % (len(listed), len(digests)) in report.stderr
        kmsd.client().disable_key(KeyId=second)
        fsck = kmsfs("fsck", cipher, env=env, check=False)
        assert fsck.returncode == 4
        unreadable = sorted(line.split()[1].rstrip(":") for line in fsck.stdout.splitlines() if line.startswith("UNREADABLE"))
        assert unreadable == listed
        kmsd.client().enable_key(KeyId=second)
        assert kmsfs("fsck", cipher, env=env).returncode == 0


def test_deep_paths_are_counted_and_links_are_not_followed():
    """A file deeper than PATH_MAX is listed like any other; --path through a link, and a link in
    the tree, lead nowhere outside the volume."""
    with new_volume("kmsfs-deep-", PLAINTEXT_NAMES) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            directory = os.open(mount_point, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for level in range(17):
                    name = ("%02d" % level) + "d" * 251
                    os.mkdir(name, dir_fd=directory)
                    child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=directory)
                    os.close(directory)
                    directory = child
                fd = os.open("precious", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=directory)
                os.write(fd, b"deep")
                os.close(fd)
            finally:
                os.close(directory)
            with open(os.path.join(mount_point, "shallow"), "wb") as f:
                f.write(b"x")
        usage = key_usage(cipher, env=None)
        assert sum(usage.values()) == 2, usage
        arn = next(iter(usage))
        listed = kmsfs("shred-report", cipher, "--key", arn, env=None).stdout.split()
        assert len(listed) == 2 and any(path.endswith("/precious") for path in listed)
        assert "2 files checked" in kmsfs("fsck", cipher, env=None).stdout

        outside = os.path.join(os.path.dirname(cipher), "outside")
        os.mkdir(outside)
        with open(os.path.join(outside, "stray"), "wb") as f:
            f.write(b"not the volume's")
        os.symlink(outside, os.path.join(cipher, "lnk"))
        refused = kmsfs("keys", cipher, "--path", "lnk", env=None, check=False)
        assert refused.returncode != 0 and "links are not followed" in refused.stderr
        assert sum(key_usage(cipher, env=None).values()) == 2  # the link in the tree is not walked either
