"""The embedded store's root key against a stolen disk: a copy of the volume and its key store
(what a thief or a leaked backup has) decrypts nothing without what kmsfs init kept apart — a
passphrase, a key file elsewhere, a systemd credential. Through real mounts; every mount is
undone when its test ends."""
import json
import os
import shutil
import subprocess

import pytest

from test_mount import KMSFS, foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root")

SECRET = b"the payroll, 2026\n" * 100


def write_secret(cipher, mount_point, extra=()):
    with foreground_mount(cipher, mount_point, extra=list(extra)):
        with open(os.path.join(mount_point, "payroll"), "wb") as f:
            f.write(SECRET)


def mount_fails(cipher, mount_point, *extra, env=None):
    """A background mount that must fail: its stderr (exit status 1 asserted)."""
    result = subprocess.run([KMSFS, "mount", cipher, mount_point, *extra], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 1, result.stderr
    return result.stderr


def reads_secret(cipher, mount_point, extra=(), env=None):
    with foreground_mount(cipher, mount_point, extra=list(extra), env=env):
        return open(os.path.join(mount_point, "payroll"), "rb").read() == SECRET


def steal(cipher):
    """What a thief copies: the backing directory and its key store, attributes included."""
    root = os.path.dirname(cipher)
    stolen = os.path.join(root, "stolen")
    subprocess.run(["cp", "-a", cipher, stolen], check=True)
    subprocess.run(["cp", "-a", cipher + ".keys", stolen + ".keys"], check=True)
    return stolen


def passphrase_file(directory, name, text):
    """A passphrase file as kmsfs wants it: private to its owner (0600, created so)."""
    path = os.path.join(directory, name)
    data = text if isinstance(text, bytes) else (text + "\n").encode()
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
    return path


def test_a_stolen_copy_of_a_passphrase_protected_volume_does_not_decrypt(tmp_path):
    right = passphrase_file(tmp_path, "right", "correct horse battery staple")
    wrong = passphrase_file(tmp_path, "wrong", "correct horse battery stapler")
    with new_volume("kmsfs-pass-", "--passphrase-file", right) as (cipher, mount_point):
        store = cipher + ".keys"
        assert sorted(n for n in os.listdir(store) if not n.startswith("keys.sqlite")) == ["root-key.json"]
        record = json.load(open(os.path.join(store, "root-key.json")))
        assert record["protection"] == "passphrase" and record["scrypt"]["n"] >= 1 << 17
        assert os.stat(os.path.join(store, "root-key.json")).st_mode & 0o777 == 0o600
        write_secret(cipher, mount_point, ["--passphrase-file", right])
        stolen = steal(cipher)
        assert "protected by a passphrase" in mount_fails(stolen, mount_point)
        assert "wrong passphrase" in mount_fails(stolen, mount_point, "--passphrase-file", wrong)
        fsck = subprocess.run([KMSFS, "fsck", stolen], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert fsck.returncode == 8 and "passphrase" in fsck.stderr
        # The copy is complete: with the passphrase it reads, so only the passphrase was missing.
        assert reads_secret(stolen, mount_point, ["-o", "passphrase_file=" + right])


def test_a_changed_root_key_record_is_refused_without_effort(tmp_path):
    right = passphrase_file(tmp_path, "right", "a passphrase")
    with new_volume("kmsfs-record-", "--passphrase-file", right) as (cipher, mount_point):
        path = os.path.join(cipher + ".keys", "root-key.json")
        original = json.load(open(path))
        edits = {
            "a cheaper derivation": lambda r: r["scrypt"].update(n=1 << 10),
            "a derivation that would take 1 TiB": lambda r: r["scrypt"].update(n=1 << 30, r=1024),
            "another salt": lambda r: r.update(salt=r["salt"][::-1]),
            "a flipped sealed key": lambda r: r.update(sealed=("A" if r["sealed"][0] != "A" else "B") + r["sealed"][1:]),
            "a cut sealed key": lambda r: r.update(sealed=r["sealed"][:20]),
        }
        for name, edit in edits.items():
            record = json.loads(json.dumps(original))
            edit(record)
            with open(path, "w") as f:
                json.dump(record, f)
            stderr = mount_fails(cipher, mount_point, "--passphrase-file", right)
            assert "root key" in stderr, name
        with open(path, "w") as f:
            json.dump(original, f)
        write_secret(cipher, mount_point, ["--passphrase-file", right])


def test_a_root_key_file_kept_elsewhere(tmp_path):
    key_file = str(tmp_path / "usb" / "volume.key")
    os.mkdir(tmp_path / "usb")
    with new_volume("kmsfs-keyfile-", "--root-key-file", key_file) as (cipher, mount_point):
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        assert not os.path.exists(os.path.join(cipher + ".keys", "root.key"))
        write_secret(cipher, mount_point)
        stolen = steal(cipher)
        os.rename(key_file, key_file + ".away")  # the USB key is not plugged in (or not stolen)
        assert "is not there" in mount_fails(stolen, mount_point)
        assert reads_secret(stolen, mount_point, ["--root-key-file", key_file + ".away"])
        # Another 32-byte key in its place opens nothing: the store checks its root key.
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        assert "does not match" in mount_fails(stolen, mount_point)
    root = tmp_path / "inside"
    result = subprocess.run([KMSFS, "init", str(root / "c"), "--root-key-file", str(root / "c" / "root.key")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "keep it apart" in result.stderr


@pytest.mark.skipif(not shutil.which("systemd-creds"), reason="needs systemd-creds")
def test_a_root_key_sealed_as_a_systemd_credential(tmp_path):
    credentials = str(tmp_path / "credstore")
    with new_volume("kmsfs-cred-", "--root-key-credential", "kmsfs-test", "--credential-store", credentials) as (cipher, mount_point):
        sealed = os.path.join(credentials, "kmsfs-test")
        assert os.stat(sealed).st_mode & 0o077 == 0
        write_secret(cipher, mount_point)  # as root, outside a unit: systemd-creds decrypt
        stolen = steal(cipher)
        # What a unit gets from LoadCredentialEncrypted=: the credential decrypted in
        # $CREDENTIALS_DIRECTORY; that is what a mount in a unit reads.
        given = tmp_path / "given"
        given.mkdir(mode=0o700)
        subprocess.run(["systemd-creds", "decrypt", "--name=kmsfs-test", sealed, str(given / "kmsfs-test")], check=True,
                       capture_output=True)
        os.chmod(given / "kmsfs-test", 0o400)  # as systemd hands credentials over
        os.rename(sealed, sealed + ".elsewhere")  # another machine: not this credential store
        assert "systemd credential kmsfs-test" in mount_fails(stolen, mount_point)
        assert reads_secret(stolen, mount_point, env=dict(os.environ, CREDENTIALS_DIRECTORY=str(given)))
        # A sealed credential that was changed does not decrypt.
        blob = bytearray(open(sealed + ".elsewhere", "rb").read())
        blob[len(blob) // 2] ^= 1
        with open(sealed, "wb") as f:
            f.write(blob)
        assert "systemd-creds decrypt" in mount_fails(stolen, mount_point)


def test_protect_changes_the_protection_and_keeps_every_file(tmp_path):
    first = passphrase_file(tmp_path, "first", "first passphrase")
    second = passphrase_file(tmp_path, "second", "second passphrase")
    with new_volume("kmsfs-protect-", "--unprotected") as (cipher, mount_point):
        store = cipher + ".keys"
        write_secret(cipher, mount_point)
        before = steal(cipher)  # a backup made while unprotected keeps its key (README says so)
        with foreground_mount(cipher, mount_point):
            busy = subprocess.run([KMSFS, "protect", cipher, "--to", "passphrase", "--new-passphrase-file", first],
                                  capture_output=True, text=True)
            assert busy.returncode == 1 and "already mounted at" in busy.stderr
        subprocess.run([KMSFS, "protect", cipher, "--to", "passphrase", "--new-passphrase-file", first], check=True,
                       capture_output=True)
        assert not os.path.exists(os.path.join(store, "root.key"))
        assert "protected by a passphrase" in mount_fails(cipher, mount_point)
        assert reads_secret(cipher, mount_point, ["--passphrase-file", first])
        # A new passphrase: the old one no longer opens it.
        change = subprocess.run([KMSFS, "protect", cipher, "--to", "passphrase", "--passphrase-file", first,
                                 "--new-passphrase-file", second], capture_output=True, text=True)
        assert change.returncode == 0, change.stderr
        assert "wrong passphrase" in mount_fails(cipher, mount_point, "--passphrase-file", first)
        # As a systemd unit gives it: Environment=KMSFS_PASSPHRASE_FILE=%d/passphrase.
        assert reads_secret(cipher, mount_point, env=dict(os.environ, KMSFS_PASSPHRASE_FILE=second))
        wrong = subprocess.run([KMSFS, "protect", cipher, "--to", "unprotected", "--passphrase-file", first],
                               capture_output=True, text=True)
        assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
        assert reads_secret(before, mount_point)


def test_a_new_root_key_keeps_every_file_and_the_old_key_opens_nothing(tmp_path):
    """`kmsfs protect --new-root-key`: the store moves to a new root key, kept under a new
    passphrase; a file written before reads back through a mount given the new passphrase. The
    old key — what a thief of the old key file, or of the unprotected store, holds — opens nothing
    of the store as it is now, and no file of the store holds either key. Refused under a mount;
    and the new key file of a second rotation must be a new file."""
    second = passphrase_file(tmp_path, "second", "second passphrase")
    with new_volume("kmsfs-new-root-", "--unprotected") as (cipher, mount_point):
        store = cipher + ".keys"
        write_secret(cipher, mount_point)
        old_hex = open(os.path.join(store, "root.key")).read().strip()
        with foreground_mount(cipher, mount_point):
            busy = subprocess.run([KMSFS, "protect", cipher, "--to", "passphrase", "--new-passphrase-file", second, "--new-root-key"],
                                  capture_output=True, text=True)
            assert busy.returncode == 1 and "already mounted at" in busy.stderr
        rotated = subprocess.run([KMSFS, "protect", cipher, "--to", "passphrase", "--new-passphrase-file", second, "--new-root-key"],
                                 capture_output=True, text=True)
        assert rotated.returncode == 0 and "root key rotated from" in rotated.stdout, rotated.stdout + rotated.stderr
        assert "root-key.json" in os.listdir(store) and not {"root.key", "root-key.next.json"} & set(os.listdir(store))
        assert reads_secret(cipher, mount_point, ["--passphrase-file", second])
        # A copy of the store as it is now, given the old key as its unprotected root.key.
        stolen = steal(cipher)
        os.remove(stolen + ".keys/root-key.json")
        with open(os.open(stolen + ".keys/root.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(old_hex + "\n")
        assert "does not match this key store" in mount_fails(stolen, mount_point)
        for name in os.listdir(store):
            data = open(os.path.join(store, name), "rb").read()
            assert old_hex.encode() not in data and bytes.fromhex(old_hex) not in data, name
        # To a key file: an existing file is refused (it may be another volume's key), and
        # nothing is left behind; a new file is made.
        taken = tmp_path / "taken.key"
        with open(os.open(str(taken), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(old_hex + "\n")
        refused = subprocess.run([KMSFS, "protect", cipher, "--to", "key-file:" + str(taken), "--new-root-key", "--passphrase-file", second],
                                 capture_output=True, text=True)
        assert refused.returncode == 1 and "exists: name a new file" in refused.stderr, refused.stderr
        assert not {"root-key.next.json", "root.key.next"} & set(os.listdir(store))
        assert reads_secret(cipher, mount_point, ["--passphrase-file", second])
        fresh = str(tmp_path / "fresh.key")
        again = subprocess.run([KMSFS, "protect", cipher, "--to", "key-file:" + fresh, "--new-root-key", "--passphrase-file", second],
                               capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert oct(os.stat(fresh).st_mode & 0o777) == "0o600"
        assert reads_secret(cipher, mount_point)
        assert "was the store replaced" in mount_fails(cipher, mount_point, "--passphrase-file", second)


def test_what_a_planted_or_mistaken_file_cannot_do(tmp_path):
    """Files that decide where a root key comes from are checked before use: a record naming a
    FIFO or a huge file fails at once; a key file others can read, a passphrase file others can
    read, a key file that is the store's own root.key (a hard link) or lies in the store through
    a symlink are refused, and nothing is destroyed; a passphrase given for a store that takes
    none is refused (the store may have been swapped)."""
    with new_volume("kmsfs-planted-", "--unprotected") as (cipher, mount_point):
        store = cipher + ".keys"
        write_secret(cipher, mount_point)
        right = passphrase_file(tmp_path, "right", "a passphrase")
        # A passphrase for a store that takes none.
        assert "was the store replaced" in mount_fails(cipher, mount_point, "--passphrase-file", right)
        # A passphrase file others may read.
        loose = passphrase_file(tmp_path, "loose", "a passphrase")
        os.chmod(loose, 0o644)
        assert "mode 644" in mount_fails(cipher, mount_point, "--passphrase-file", loose)
        # The store's root.key under another name: refused, and the key survives.
        (tmp_path / "usb").mkdir()
        os.link(os.path.join(store, "root.key"), str(tmp_path / "usb" / "linked.key"))
        result = subprocess.run([KMSFS, "protect", cipher, "--to", "key-file:" + str(tmp_path / "usb" / "linked.key")],
                                capture_output=True, text=True)
        assert result.returncode == 1 and "hard link" in result.stderr
        # A new key file inside the store, reached through a symlink.
        os.symlink(store, str(tmp_path / "into-store"))
        result = subprocess.run([KMSFS, "protect", cipher, "--to", "key-file:" + str(tmp_path / "into-store" / "k.key")],
                                capture_output=True, text=True)
        assert result.returncode == 1 and "keep it apart" in result.stderr
        assert reads_secret(cipher, mount_point)
        # A key file others can read is refused at mount.
        key_file = str(tmp_path / "usb" / "volume.key")
        subprocess.run([KMSFS, "protect", cipher, "--to", "key-file:" + key_file], check=True, capture_output=True)
        os.chmod(key_file, 0o644)
        assert "mode 644" in mount_fails(cipher, mount_point)
        os.chmod(key_file, 0o600)
        assert reads_secret(cipher, mount_point)
        # A record naming a FIFO, or a huge sparse file, as the key file: refused at once.
        record_path = os.path.join(store, "root-key.json")
        record = json.load(open(record_path))
        os.mkfifo(str(tmp_path / "fifo"), 0o600)
        with open(str(tmp_path / "huge"), "wb") as f:
            f.truncate(1 << 30)
        os.chmod(str(tmp_path / "huge"), 0o600)
        for planted, reason in ((str(tmp_path / "fifo"), "not a regular file"), (str(tmp_path / "huge"), "too large")):
            record["keyFile"] = planted
            with open(record_path, "w") as f:
                json.dump(record, f)
            assert reason in mount_fails(cipher, mount_point)


def test_a_binary_passphrase_file_is_used_whole(tmp_path):
    """A key file used as a passphrase (random bytes, inner line breaks) is taken whole, less one
    trailing line break: its first line alone does not unlock it."""
    whole = passphrase_file(tmp_path, "whole", b"Q\n" + bytes(range(256)) * 2 + b"\n")
    first_line = passphrase_file(tmp_path, "first", "Q")
    with new_volume("kmsfs-binary-", "--passphrase-file", whole) as (cipher, mount_point):
        write_secret(cipher, mount_point, ["--passphrase-file", whole])
        assert "wrong passphrase" in mount_fails(cipher, mount_point, "--passphrase-file", first_line)
