"""kmsfs rekey through a real mount: new data keys and re-encrypted contents, with a reader
reading all along, metadata kept, hard links and interrupted runs handled."""
import os
import signal
import subprocess
import threading
import time

from test_mount import PLAINTEXT_NAMES, KMSFS, foreground_mount, new_volume


def test_rekey_under_a_concurrent_reader_keeps_contents_and_metadata():
    with new_volume("kmsfs-rekey-", PLAINTEXT_NAMES) as (cipher, mount_point), foreground_mount(cipher, mount_point):
        contents = {}
        for index in range(30):
            path = os.path.join(mount_point, "d%d" % (index % 3), "f%02d" % index)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            contents[path] = os.urandom(index * 3001)
            with open(path, "wb") as f:
                f.write(contents[path])
        big = os.path.join(mount_point, "d0", "big")
        contents[big] = os.urandom(8 << 20)
        with open(big, "wb") as f:
            f.write(contents[big])
        os.chmod(big, 0o640)
        os.setxattr(big, "user.colour", b"blue")
        os.utime(big, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
        os.link(os.path.join(mount_point, "d1", "f01"), os.path.join(mount_point, "d1", "link"))
        leftover = os.path.join(mount_point, "d2", ".kmsfs-rekey.f02.dead")
        with open(leftover, "wb") as f:
            f.write(b"interrupted run")
        keys_before = {path: os.getxattr(cipher + path[len(mount_point):], "user.kmsfs.key") for path in contents}

        errors, reads = [], [0]
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    with open(big, "rb") as f:
                        if f.read() != contents[big]:
                            errors.append("contents differ")
                    reads[0] += 1
                except OSError as error:
                    errors.append(str(error))

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            run = subprocess.run([KMSFS, "rekey", "-r", mount_point], capture_output=True, text=True, timeout=300)
        finally:
            stop.set()
            thread.join()
        assert run.returncode == 4, run.stdout + run.stderr  # the hard-linked pair is skipped
        assert "SKIPPED %s" % os.path.join(mount_point, "d1", "f01") in run.stdout and "hard links" in run.stdout
        assert not errors and reads[0] > 0, (errors, reads)
        assert not os.path.exists(leftover)
        for path, payload in contents.items():
            with open(path, "rb") as f:
                assert f.read() == payload, path
            key_after = os.getxattr(cipher + path[len(mount_point):], "user.kmsfs.key")
            assert (key_after == keys_before[path]) == path.endswith("d1/f01"), path
        info = os.stat(big)
        assert oct(info.st_mode & 0o7777) == oct(0o640) and info.st_mtime_ns == 1_700_000_000_123_456_789
        assert os.getxattr(big, "user.colour") == b"blue"
        assert not [n for d in ("d0", "d1", "d2") for n in os.listdir(os.path.join(mount_point, d)) if n.startswith(".kmsfs-rekey")]


def test_a_killed_rekey_leaves_the_file_whole():
    with new_volume("kmsfs-rekey-kill-", PLAINTEXT_NAMES) as (cipher, mount_point), foreground_mount(cipher, mount_point):
        path = os.path.join(mount_point, "big")
        payload = os.urandom(64 << 20)
        with open(path, "wb") as f:
            f.write(payload)
        run = subprocess.Popen([KMSFS, "rekey", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        run.send_signal(signal.SIGKILL)
        run.wait()
        with open(path, "rb") as f:
            assert f.read() == payload
        subprocess.run([KMSFS, "rekey", "-r", mount_point], check=True, capture_output=True, timeout=300)
        assert os.listdir(mount_point) == ["big"]
        with open(path, "rb") as f:
            assert f.read() == payload
