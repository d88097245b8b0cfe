"""kmsfs manifest: a volume copied with `rsync -a` (no -X) loses every key attribute; the
manifest exported before puts them back, authenticated, never over a different one."""
import json
import os
import shutil
import stat
import subprocess

import pytest

from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, new_volume


def kmsfs(*arguments, check=True):
    result = subprocess.run([KMSFS, *arguments], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def fill(mount_point):
    contents = {}
    for index in range(40):
        path = "d%d/f%02d" % (index % 4, index)
        os.makedirs(os.path.join(mount_point, os.path.dirname(path)), exist_ok=True)
        contents[path] = os.urandom(index * 997)
        with open(os.path.join(mount_point, path), "wb") as f:
            f.write(contents[path])
    return contents


def copy_without_xattrs(cipher, destination):
    """The volume and its embedded key store, as rsync -a copies them: without extended attributes."""
    for suffix in ("", ".keys"):
        subprocess.run(["rsync", "-a", cipher + suffix + "/", destination + suffix + "/"], check=True)


@pytest.mark.parametrize("bucket_keys", [False, True], ids=["per-file", "bucket-keys"])
def test_manifest_restores_what_rsync_without_x_lost(bucket_keys):
    arguments = ["--bucket-keys", "--bucket-key-max-files", "7"] if bucket_keys else []
    with new_volume("kmsfs-manifest-", PLAINTEXT_NAMES, *arguments) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            contents = fill(mount_point)
        manifest = os.path.join(os.path.dirname(cipher), "manifest.json")
        kmsfs("manifest", "export", cipher, "-o", manifest)
        assert stat.S_IMODE(os.stat(manifest).st_mode) == 0o600
        copy = os.path.join(os.path.dirname(cipher), "copy")
        copy_without_xattrs(cipher, copy)
        assert not [p for p in contents if "user.kmsfs.key" in os.listxattr(os.path.join(copy, p))]
        if bucket_keys:
            shutil.rmtree(os.path.join(copy, "kmsfs.buckets"))  # a sync that skipped it, too
        with foreground_mount(copy, mount_point):
            with pytest.raises(OSError):
                open(os.path.join(mount_point, "d0/f00"), "rb").read()

        # An edited manifest is refused whole: one file handed another file's key.
        with open(manifest) as f:
            document = json.load(f)
        forged = dict(document, files=[dict(document["files"][0], attribute=document["files"][1]["attribute"])] + document["files"][1:])
        with open(manifest + ".forged", "w") as f:
            json.dump(forged, f)
        refused = kmsfs("manifest", "restore", copy, manifest + ".forged", check=False)
        assert refused.returncode == 8 and "MAC does not verify" in refused.stderr
        assert not [p for p in contents if "user.kmsfs.key" in os.listxattr(os.path.join(copy, p))]

        # One file with another attribute already, one file gone: reported, left alone.
        os.setxattr(os.path.join(copy, "d1/f01"), "user.kmsfs.key", b"\x01" + b"\x00" * 20)
        os.unlink(os.path.join(copy, "d2/f02"))
        restored = kmsfs("manifest", "restore", copy, manifest, check=False)
        assert restored.returncode == 4, restored.stdout + restored.stderr
        assert "CONFLICT d1/f01" in restored.stdout and "MISSING d2/f02" in restored.stdout
        assert "%d restored" % (len(contents) - 2) in restored.stdout
        assert os.getxattr(os.path.join(copy, "d1/f01"), "user.kmsfs.key") == b"\x01" + b"\x00" * 20
        with foreground_mount(copy, mount_point):
            for path, payload in contents.items():
                if path in ("d1/f01", "d2/f02"):
                    continue
                with open(os.path.join(mount_point, path), "rb") as f:
                    assert f.read() == payload, path
        again = kmsfs("manifest", "restore", copy, manifest, check=False)
        assert "0 restored, %d already there" % (len(contents) - 2) in again.stdout


def test_a_manifest_of_another_volume_is_refused():
    with new_volume("kmsfs-manifest-a-", PLAINTEXT_NAMES) as (first, _), new_volume("kmsfs-manifest-b-", PLAINTEXT_NAMES) as (second, _):
        manifest = os.path.join(os.path.dirname(first), "manifest.json")
        kmsfs("manifest", "export", first, "-o", manifest)
        refused = kmsfs("manifest", "restore", second, manifest, check=False)
        assert refused.returncode == 8 and "not of this one" in refused.stderr


def test_manifest_restores_directory_ids_with_encrypted_names():
    """With encrypted names a copy without extended attributes also loses each directory's ID,
    and with it every name inside; the manifest lists the IDs and restore puts them back."""
    with new_volume("kmsfs-manifest-names-") as (cipher, mount_point):
        with foreground_mount(cipher, mount_point):
            contents = fill(mount_point)
            os.makedirs(os.path.join(mount_point, "empty", "deeper"))
        manifest = os.path.join(os.path.dirname(cipher), "manifest.json")
        kmsfs("manifest", "export", cipher, "-o", manifest)
        with open(manifest) as f:
            assert len(json.load(f)["directories"]) == 6  # d0..d3, empty, empty/deeper
        copy = os.path.join(os.path.dirname(cipher), "copy")
        copy_without_xattrs(cipher, copy)
        with foreground_mount(copy, mount_point):
            with pytest.raises(OSError):
                os.listdir(os.path.join(mount_point, "d0"))
        restored = kmsfs("manifest", "restore", copy, manifest)
        assert "6 directory IDs restored" in restored.stdout, restored.stdout
        with foreground_mount(copy, mount_point):
            assert os.listdir(os.path.join(mount_point, "empty")) == ["deeper"]
            for path, payload in contents.items():
                with open(os.path.join(mount_point, path), "rb") as f:
                    assert f.read() == payload, path
        again = kmsfs("manifest", "restore", copy, manifest)
        assert "0 directory IDs restored" in again.stdout
