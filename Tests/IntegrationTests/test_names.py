"""Encrypted names (docs/FORMAT.md, "Encrypted names") through a real mount: every length and
byte value, renames (also RENAME_EXCHANGE), links, long names; what an attacker with write access
to the backing directory can do to names; a copy with rsync -aX."""
import base64
import ctypes
import errno
import json
import os
import shutil
import subprocess

import pytest

from test_mount import KMSFS, backing_path, foreground_mount, new_volume

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root")

LIBC = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2


def rename_exchange(a, b):
    if LIBC.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


@pytest.fixture()
def volume():
    with new_volume("kmsfs-names-", "--encrypt-names") as (cipher, mount_point), foreground_mount(cipher, mount_point) as daemon:
        yield cipher, mount_point, daemon


def backing_names(cipher):
    """Every name in the backing tree, as bytes."""
    found = set()
    for _, directories, files in os.walk(cipher.encode()):
        found.update(directories)
        found.update(files)
    return found


def name_of_length(length, salt):
    return bytes(((index * 7 + salt) % 254) + 1 for index in range(length)).replace(b"/", b"0").replace(b"\x00", b"1")


def test_every_length_and_byte_value_round_trips_and_nothing_plain_is_stored(volume):
    cipher, mount_point, _ = volume
    root = mount_point.encode()
    names = {name_of_length(length, length) for length in range(1, 256)} - {b".", b".."}
    names |= {b"caf\xe9", b"\xff\xfe\xfd", "payroll-2026-layoffs.xlsx".encode(), b"kmsfs.conf", b"kmsfs.long.x"}
    for name in names:
        with open(os.path.join(root, name), "wb") as f:
            f.write(name)
    assert set(os.listdir(root)) == names
    for name in names:
        with open(os.path.join(root, name), "rb") as f:
            assert f.read() == name
    stored = backing_names(cipher)
    assert not (stored & {n for n in names if n not in (b"kmsfs.conf",)}), "a plaintext name reached the backing directory"
    assert all(len(n) <= 255 for n in stored)
    # Equal names in different directories are stored differently.
    for directory in (b"one", b"two"):
        os.mkdir(os.path.join(root, directory))
        open(os.path.join(root, directory, b"same"), "w").close()
    one, two = (os.listdir(os.path.join(cipher.encode(), [n for n in os.listdir(cipher.encode()) if os.path.isdir(os.path.join(cipher.encode(), n))
                                                          and b"kmsfs" not in n][i])) for i in (0, 1))
    assert one and two and one != two
    subprocess.run(["rm", "-rf", "--", *[os.path.join(root, n) for n in os.listdir(root)]], check=True)
    assert os.listdir(root) == []
    assert backing_names(cipher) == {b"kmsfs.conf"}, "side files or temporaries left behind"


def test_renames_links_symlinks_and_long_names(volume):
    cipher, mount_point, _ = volume
    m = mount_point
    long_a, long_b = "a" * 255, "b" * 200
    os.makedirs(os.path.join(m, "x", long_a))
    os.mkdir(os.path.join(m, "y"))
    with open(os.path.join(m, "x", long_a, "f"), "w") as f:
        f.write("deep")
    with open(os.path.join(m, "x", long_b), "w") as f:
        f.write("B")
    with open(os.path.join(m, "y", "short"), "w") as f:
        f.write("S")
    # Within and across directories, long to short and back.
    os.rename(os.path.join(m, "x", long_b), os.path.join(m, "y", long_b))
    os.rename(os.path.join(m, "y", "short"), os.path.join(m, "x", "short2"))
    os.rename(os.path.join(m, "y", long_b), os.path.join(m, "y", "was-long"))
    os.rename(os.path.join(m, "x", long_a), os.path.join(m, "y", long_a))  # a directory, with its contents
    assert sorted(os.listdir(os.path.join(m, "x"))) == ["short2"]
    assert sorted(os.listdir(os.path.join(m, "y"))) == sorted([long_a, "was-long"])
    assert open(os.path.join(m, "y", long_a, "f")).read() == "deep"
    # RENAME_EXCHANGE of a long and a short name in different directories.
    rename_exchange(os.path.join(m, "y", "was-long"), os.path.join(m, "x", "short2"))
    assert open(os.path.join(m, "y", "was-long")).read() == "S" and open(os.path.join(m, "x", "short2")).read() == "B"
    # Hard links under long names; symlinks.
    os.link(os.path.join(m, "x", "short2"), os.path.join(m, "y", "c" * 230))
    assert os.stat(os.path.join(m, "x", "short2")).st_nlink == 2
    os.symlink("x/short2", os.path.join(m, "d" * 180))
    assert os.readlink(os.path.join(m, "d" * 180)) == "x/short2" and open(os.path.join(m, "d" * 180)).read() == "B"
    os.unlink(os.path.join(m, "y", "c" * 230))
    os.unlink(os.path.join(m, "d" * 180))
    sides = [n for n in backing_names(cipher) if n.endswith(b".name")]
    assert len(sides) == 1, sides  # the long directory's, nothing else
    assert not [n for n in backing_names(cipher) if n.startswith(b"kmsfs.tmp.")]


def test_names_moved_or_edited_in_the_backing_store_never_decrypt_to_another_name(volume):
    cipher, mount_point, daemon = volume
    m = mount_point
    for directory in ("left", "right"):
        os.mkdir(os.path.join(m, directory))
        for name in ("salary", "plans"):
            with open(os.path.join(m, directory, name), "w") as f:
                f.write(directory + name)
    by_directory = {}
    stored_dirs = [n for n in os.listdir(cipher) if not n.startswith("kmsfs.")]
    assert len(stored_dirs) == 2
    for stored in stored_dirs:
        by_directory[stored] = sorted(os.listdir(os.path.join(cipher, stored)))
    first, second = stored_dirs
    # Move one backing entry into the other directory, and edit one name in place.
    moved = by_directory[first][0]
    os.rename(os.path.join(cipher, first, moved), os.path.join(cipher, second, moved))
    edited = by_directory[second][0]
    os.rename(os.path.join(cipher, second, edited), os.path.join(cipher, second, ("A" if edited[0] != "A" else "B") + edited[1:]))
    # The kernel remembers names it has seen: drop its caches before looking again.
    subprocess.run(["sh", "-c", "echo 2 > /proc/sys/vm/drop_caches"], check=True)
    seen = {d: sorted(os.listdir(os.path.join(m, d))) for d in ("left", "right")}
    # Each directory shows only names that are still its own: one lost its moved entry, the
    # other its edited one; the moved entry shows nowhere; nothing shows under a foreign name.
    assert sorted(len(v) for v in seen.values()) == [1, 1], seen
    for directory, names in seen.items():
        for name in names:
            assert name in ("salary", "plans")
            with open(os.path.join(m, directory, name)) as f:
                assert f.read() == directory + name


def test_a_directory_without_its_id_is_refused_not_guessed():
    with new_volume("kmsfs-names-dirid-", "--encrypt-names") as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            os.mkdir(os.path.join(mount_point, "kept"))
            os.mkdir(os.path.join(mount_point, "stripped"))
            for directory in ("kept", "stripped"):
                with open(os.path.join(mount_point, directory, "f"), "w") as f:
                    f.write(directory)
        for stored in os.listdir(cipher):
            if not stored.startswith("kmsfs."):
                ids = os.getxattr(os.path.join(cipher, stored), "user.kmsfs.dirid")
                assert len(ids) == 16
        with foreground_mount(cipher, mount_point):
            victim = [n for n in os.listdir(cipher) if not n.startswith("kmsfs.")][0]
            os.removexattr(os.path.join(cipher, victim), "user.kmsfs.dirid")
            outcomes = {}
            for directory in ("kept", "stripped"):
                try:
                    outcomes[directory] = os.listdir(os.path.join(mount_point, directory))
                except OSError as error:
                    outcomes[directory] = error.errno
            assert sorted(map(str, outcomes.values())) == sorted([str(errno.EIO), "['f']"]), outcomes


def test_a_copy_with_rsync_keeps_every_name():
    with new_volume("kmsfs-names-copy-", "--encrypt-names") as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            os.makedirs(os.path.join(mount_point, "deep", "e" * 250))
            for index in range(50):
                with open(os.path.join(mount_point, "deep", "e" * 250, "file-%d" % index), "w") as f:
                    f.write(str(index))
        copy = cipher + "-copy"
        subprocess.run(["rsync", "-aX", cipher + "/", copy + "/"], check=True)
        subprocess.run(["rsync", "-aX", cipher + ".keys/", copy + ".keys/"], check=True)
        try:
            with foreground_mount(copy, mount_point):
                names = sorted(os.listdir(os.path.join(mount_point, "deep", "e" * 250)))
                assert names == sorted("file-%d" % i for i in range(50))
                assert open(os.path.join(mount_point, "deep", "e" * 250, "file-7")).read() == "7"
        finally:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.rmtree(copy + ".keys", ignore_errors=True)


def test_a_kmsfs_that_knows_only_plaintext_names_refuses_the_volume_by_its_version():
    with new_volume("kmsfs-names-version-", "--encrypt-names") as (cipher, _):
        with open(os.path.join(cipher, "kmsfs.conf")) as f:
            assert '"formatVersion" : 5' in f.read()


def test_kmsfs_name_translates_both_ways():
    with new_volume("kmsfs-names-tool-") as (cipher, mount_point):
        relative = os.path.join("dir", "f" * 200, "report.txt")
        with foreground_mount(cipher, mount_point):
            os.makedirs(os.path.join(mount_point, "dir", "f" * 200))
            with open(os.path.join(mount_point, relative), "w") as f:
                f.write("x")
            through_mount = subprocess.run([KMSFS, "name", "encrypt", os.path.join(mount_point, relative)],
                                           capture_output=True, text=True, check=True).stdout.strip()
        assert os.path.isfile(os.path.join(cipher, through_mount)) and "report" not in through_mount
        offline = subprocess.run([KMSFS, "name", "encrypt", cipher, relative], capture_output=True, text=True, check=True).stdout.strip()
        assert offline == through_mount
        back = subprocess.run([KMSFS, "name", "decrypt", cipher, through_mount], capture_output=True, text=True, check=True).stdout.strip()
        assert back == relative
        tampered = through_mount[:-3] + ("A" if through_mount[-3] != "A" else "B") + through_mount[-2:]
        refused = subprocess.run([KMSFS, "name", "decrypt", cipher, tampered], capture_output=True, text=True)
        assert refused.returncode != 0 and "does not decrypt" in refused.stderr


def run_kmsfs(*arguments, check=True):
    result = subprocess.run([KMSFS, *arguments], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_operator_tools_print_plaintext_paths():
    """keys --path, shred-report, rewrap --dry-run, fsck and the manifest name plaintext paths:
    unmounted (the name key from the key service), mounted (translated by the mount, whose
    embedded store is locked), and backing paths, said so, when neither can translate."""
    with new_volume("kmsfs-names-tools-") as (cipher, mount_point):
        files = ["top.txt", "reports/q3 payroll.xlsx", "reports/" + "l" * 200 + "/deep.bin"]
        with foreground_mount(cipher, mount_point):
            for path in files:
                os.makedirs(os.path.dirname(os.path.join(mount_point, path)), exist_ok=True)
                with open(os.path.join(mount_point, path), "w") as f:
                    f.write(path)
            arn = os.getxattr(os.path.join(mount_point, "top.txt"), "user.kmsfs.info").decode().split("KMS key: ")[1].split("\n")[0]
            mounted = run_kmsfs("shred-report", cipher, "--key", arn)
            assert mounted.stdout.splitlines() == sorted(files), mounted.stdout + mounted.stderr
            assert run_kmsfs("shred-report", mount_point, "--key", arn, "--path", "reports").stdout.splitlines() == sorted(files[1:])
            # Hard links: every name of the file, once. A name with a line break stays one line.
            os.link(os.path.join(mount_point, "top.txt"), os.path.join(mount_point, "reports", "also-top.txt"))
            with open(os.path.join(mount_point, "two\nlines"), "w") as f:
                f.write("x")
            linked = run_kmsfs("shred-report", cipher, "--key", arn).stdout.splitlines()
            assert linked == sorted(files + ["reports/also-top.txt", "two\\nlines"]), linked
            # A file planted in the backing store under a plaintext-looking name is not passed
            # off as a name of the volume's: it is marked.
            os.mkdir(os.path.join(cipher, "reports"))
            shutil.copy2(backing_path(cipher, os.path.join(mount_point, "top.txt")), os.path.join(cipher, "reports", "planted.txt"))
            planted = run_kmsfs("shred-report", cipher, "--key", arn)
            assert "reports/planted.txt (backing path: not translated by the mount)" in planted.stdout.splitlines(), planted.stdout
            assert "1 paths are backing paths" in planted.stderr
            shutil.rmtree(os.path.join(cipher, "reports"))
            os.unlink(os.path.join(mount_point, "reports", "also-top.txt"))
            os.unlink(os.path.join(mount_point, "two\nlines"))
        unmounted = run_kmsfs("shred-report", cipher, "--key", arn)
        assert unmounted.stdout.splitlines() == sorted(files)
        assert "\t2\t" not in run_kmsfs("keys", cipher).stdout
        in_reports = run_kmsfs("keys", cipher, "--path", "reports").stdout.splitlines()
        assert in_reports[1].split("\t")[0] == "2", in_reports
        assert run_kmsfs("keys", cipher, "--path", "nowhere", check=False).returncode != 0
        assert "would re-wrap 2 files" in run_kmsfs("rewrap", cipher, "--dry-run", "--to", "alias/other", "--path", "reports").stdout
        export = run_kmsfs("manifest", "export", cipher)
        manifest = json.loads(export.stdout)
        assert sorted(f["path"] for f in manifest["files"]) == sorted(files)
        assert all("payroll" not in base64.b64decode(f["rawPath"]).decode() for f in manifest["files"])

        # A name edited in the backing store is reported under its backing path, marked.
        stored = os.path.join(cipher, [n for n in os.listdir(cipher) if os.path.isfile(os.path.join(cipher, n)) and not n.startswith("kmsfs.")][0])
        edited = os.path.join(cipher, "A" + os.path.basename(stored)[1:] if not os.path.basename(stored).startswith("A") else "B" + os.path.basename(stored)[1:])
        os.rename(stored, edited)
        fsck = run_kmsfs("fsck", cipher)
        assert "files checked" in fsck.stdout
        listed = run_kmsfs("shred-report", cipher, "--key", arn).stdout.splitlines()
        assert sorted(files[1:]) == [p for p in listed if "backing path" not in p]
        assert [p for p in listed if "backing path" in p] == [os.path.basename(edited) + " (backing path: a name on it does not decrypt)"]
        os.rename(edited, stored)

        # A directory whose ID was removed: its files are still listed, checked and saved,
        # under their backing paths, marked.
        reports = [n for n in os.listdir(cipher) if os.path.isdir(os.path.join(cipher, n)) and not n.startswith("kmsfs.")][0]
        directory_id = os.getxattr(os.path.join(cipher, reports), "user.kmsfs.dirid")
        os.removexattr(os.path.join(cipher, reports), "user.kmsfs.dirid")
        try:
            orphaned = run_kmsfs("shred-report", cipher, "--key", arn).stdout.splitlines()
            assert len(orphaned) == 3 and "top.txt" in orphaned
            assert all(p.endswith("(backing path: its directory reports has no ID)") for p in orphaned if p != "top.txt"), orphaned
            assert len(json.loads(run_kmsfs("manifest", "export", cipher).stdout)["files"]) == 3
            assert "3 files checked" in run_kmsfs("fsck", cipher).stdout
        finally:
            os.setxattr(os.path.join(cipher, reports), "user.kmsfs.dirid", directory_id)

        # No key service (its store moved away): backing paths, and standard error says so.
        os.rename(cipher + ".keys", cipher + ".away")
        try:
            blind = run_kmsfs("shred-report", cipher, "--key", arn)
            assert len(blind.stdout.splitlines()) == 3 and "payroll" not in blind.stdout
            assert "paths are backing paths" in blind.stderr and "kmsfs name decrypt" in blind.stderr
            assert run_kmsfs("shred-report", cipher, "--key", arn, "--path", "reports", check=False).returncode != 0
        finally:
            os.rename(cipher + ".away", cipher + ".keys")


def test_symlink_targets_are_encrypted_and_round_trip(volume):
    cipher, mount_point, _ = volume
    m = mount_point.encode()
    targets = [b"../shared/payroll.xlsx", b"/etc/hostname", b"caf\xe9/\xff", b"t" * 3000]
    for index, target in enumerate(targets):
        link = os.path.join(m, b"link%d" % index)
        os.symlink(target, link)
        assert os.readlink(link) == target
        assert os.lstat(link).st_size == len(target)
    stored = [os.readlink(os.path.join(cipher.encode(), n)) for n in os.listdir(cipher.encode()) if os.path.islink(os.path.join(cipher.encode(), n))]
    assert len(stored) == len(targets) and not set(stored) & set(targets)
    assert not any(b"payroll" in s or b"hostname" in s for s in stored)
    with pytest.raises(OSError) as excinfo:
        os.symlink(b"t" * 3100, os.path.join(m, b"too-long"))
    assert excinfo.value.errno == errno.ENAMETOOLONG
    # A target edited in the backing store does not read as another target.
    victim = [n for n in os.listdir(cipher.encode()) if os.path.islink(os.path.join(cipher.encode(), n))][0]
    path = os.path.join(cipher.encode(), victim)
    old = os.readlink(path)
    os.unlink(path)
    os.symlink(old[:-2] + (b"AA" if old[-2:] != b"AA" else b"BB"), path)
    subprocess.run(["sh", "-c", "echo 2 > /proc/sys/vm/drop_caches"], check=True)
    failures = 0
    for index in range(len(targets)):
        try:
            assert os.readlink(os.path.join(m, b"link%d" % index)) == targets[index]
        except OSError as error:
            assert error.errno == errno.EIO
            failures += 1
    assert failures == 1


def test_extended_attributes_are_encrypted_and_bound_to_their_names(volume):
    cipher, mount_point, _ = volume
    path = os.path.join(mount_point, "report")
    with open(path, "w") as f:
        f.write("x")
    os.setxattr(path, "user.colour", b"blue")
    os.setxattr(path, "user.owner-note", b"confidential: layoffs")
    os.setxattr(path, "user." + "n" * 159, b"long name")
    with pytest.raises(OSError) as excinfo:
        os.setxattr(path, "user." + "n" * 160, b"too long")
    assert excinfo.value.errno == errno.ERANGE
    assert sorted(os.listxattr(path)) == sorted(["user.colour", "user.owner-note", "user." + "n" * 159])
    assert os.getxattr(path, "user.colour") == b"blue"
    backing = backing_path(cipher, path)
    stored = [n for n in os.listxattr(backing) if not n.startswith("user.kmsfs.")]
    assert len(stored) == 3 and not {"user.colour", "user.owner-note"} & set(stored)
    assert not any(b"layoffs" in os.getxattr(backing, n) or b"blue" in os.getxattr(backing, n) for n in stored)
    # A value moved to another name in the backing store does not open; a planted name is not listed.
    short_names = [n for n in stored if n != max(stored, key=len)]  # user.colour's and user.owner-note's
    os.setxattr(backing, short_names[0], os.getxattr(backing, short_names[1]))
    os.setxattr(backing, "user.planted", b"x")
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
    assert "user.planted" not in os.listxattr(path)
    outcomes = []
    for name in ("user.colour", "user.owner-note"):
        try:
            outcomes.append(os.getxattr(path, name))
        except OSError as error:
            outcomes.append(error.errno)
    assert outcomes.count(errno.EIO) == 1, outcomes
    os.removexattr(path, "user." + "n" * 159)
    assert len([n for n in os.listxattr(backing) if not n.startswith("user.kmsfs.")]) == 3  # two sealed, one planted


def test_planted_side_files_neither_hang_nor_pass_for_other_names(volume):
    """An adversarial review found these: a FIFO planted as a long name's side file hung the
    writer and the directory (unkillable); a long entry whose side file held a short name's
    encoding listed that name twice, as a ghost after the real one was removed."""
    cipher, mount_point, _ = volume
    m = mount_point
    os.mkdir(os.path.join(m, "f"))
    long_name = "n" * 170
    with open(os.path.join(m, "f", long_name), "w") as f:
        f.write("v1")
    stored = backing_path(cipher, os.path.join(m, "f", long_name))
    os.unlink(stored + ".name")
    os.mkfifo(stored + ".name")
    with open(os.path.join(m, "f", "tmp"), "w") as f:
        f.write("v2")
    done = subprocess.run(["timeout", "10", "mv", os.path.join(m, "f", "tmp"), os.path.join(m, "f", long_name)], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert open(os.path.join(m, "f", long_name)).read() == "v2"
    # A long entry whose side file holds a short name's encoding.
    os.mkdir(os.path.join(m, "e"))
    for name in ("victim.txt", "other"):
        with open(os.path.join(m, "e", name), "w") as f:
            f.write(name)
    victim = backing_path(cipher, os.path.join(m, "e", "victim.txt"))
    other = backing_path(cipher, os.path.join(m, "e", "other"))
    import base64
    import hashlib
    short = os.path.basename(victim).encode()
    planted = "kmsfs.long." + base64.urlsafe_b64encode(hashlib.sha256(short).digest()).rstrip(b"=").decode()
    os.rename(other, os.path.join(os.path.dirname(victim), planted))
    with open(os.path.join(os.path.dirname(victim), planted + ".name"), "wb") as f:
        f.write(short)
    subprocess.run(["sh", "-c", "echo 2 > /proc/sys/vm/drop_caches"], check=True)
    assert os.listdir(os.path.join(m, "e")) == ["victim.txt"]


def test_a_directory_holding_only_leftovers_can_be_removed(volume):
    cipher, mount_point, _ = volume
    os.mkdir(os.path.join(mount_point, "d"))
    stored = backing_path(cipher, os.path.join(mount_point, "d"))
    # What a crash between removing a long entry and its side file leaves, and a temporary.
    with open(os.path.join(stored, "kmsfs.long." + "A" * 43 + ".name"), "w") as f:
        f.write("x")
    os.mkdir(os.path.join(stored, "kmsfs.tmp.0123456789abcdef01234567"))
    assert os.listdir(os.path.join(mount_point, "d")) == []
    os.rmdir(os.path.join(mount_point, "d"))
    assert not os.path.exists(stored)
    # A name kmsfs did not make is not removed for you.
    os.mkdir(os.path.join(mount_point, "p"))
    stored = backing_path(cipher, os.path.join(mount_point, "p"))
    open(os.path.join(stored, "planted"), "w").close()
    with pytest.raises(OSError) as excinfo:
        os.rmdir(os.path.join(mount_point, "p"))
    assert excinfo.value.errno == errno.ENOTEMPTY and os.path.exists(os.path.join(stored, "planted"))


def test_names_too_long_are_enametoolong(volume):
    _, mount_point, _ = volume
    with pytest.raises(OSError) as excinfo:
        open(os.path.join(mount_point, "x" * 300), "w")
    assert excinfo.value.errno == errno.ENAMETOOLONG


def test_unstorable_attribute_names_are_absent_and_unlinked_files_have_no_backing_path(volume):
    cipher, mount_point, _ = volume
    path = os.path.join(mount_point, "f")
    with open(path, "w") as f:
        f.write("x")
        with pytest.raises(OSError) as excinfo:
            os.getxattr(path, "user." + "a" * 160)
        assert excinfo.value.errno == errno.ENODATA
        os.unlink(path)
        with pytest.raises(OSError) as excinfo:
            os.getxattr("/proc/self/fd/%d" % f.fileno(), "user.kmsfs.backing-path")
        assert excinfo.value.errno == errno.ENOENT
