"""`kmsd admin` while kmsd serves the store: commands go through the running kmsd's admin socket
(the store admits one process) and take effect at once; the socket is for root and kmsd's user."""
import os
import stat
import subprocess

import botocore.exceptions
import pytest

from conftest import KMSD

NOBODY = 65534


def admin(server, *arguments, **kwargs):
    return subprocess.run([KMSD, "admin", *arguments, "--store", server.store], capture_output=True, text=True, timeout=60, **kwargs)


def error_code(call):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def test_admin_commands_reach_a_running_kmsd_and_take_effect_at_once(own_kmsd, tmp_path):
    socket_path = own_kmsd.store + ".admin.sock"
    info = os.lstat(socket_path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    # No root key is needed through the socket: the running kmsd has it.
    os.rename(os.path.join(own_kmsd.directory, "root.key"), os.path.join(own_kmsd.directory, "root.key.away"))

    made = admin(own_kmsd, "create-account", "--id", "555566667777", "--name", "later")
    assert made.returncode == 0 and "account: 555566667777 (later)" in made.stdout, made.stderr
    assert "555566667777\tlater" in admin(own_kmsd, "list-accounts").stdout

    created = admin(own_kmsd, "create-access-key", "--account", "555566667777", "--user", "ops")
    assert created.returncode == 0, created.stderr
    key_id = created.stdout.split("access key id: ")[1].split()[0]
    secret = created.stdout.split("secret access key: ")[1].split()[0]
    assert "arn:aws:iam::555566667777:user/ops" in created.stdout
    ops = own_kmsd.client(key_id, secret)
    # The running engine knows the key at once; the user has no policy yet, so KMS refuses it
    # on authorization, not on authentication.
    assert error_code(lambda: ops.list_keys()) == "AccessDeniedException"
    listed = admin(own_kmsd, "list-access-keys", "--account", "555566667777").stdout
    assert key_id in listed and secret not in listed

    seed = tmp_path / "seed.yaml"
    seed.write_text("""accounts:
  - id: "555566667777"
    accessKeys:
      - id: AKIAIOSFODNN7SEEDED1
        secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYSEEDED1KEY
    keys:
      - aliases: [alias/seeded-live]
        description: seeded while serving
""")
    applied = admin(own_kmsd, "seed", str(seed))
    assert applied.returncode == 0 and "created" in applied.stdout, applied.stderr
    seeded = own_kmsd.client("AKIAIOSFODNN7SEEDED1", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSEEDED1KEY")
    assert seeded.describe_key(KeyId="alias/seeded-live")["KeyMetadata"]["Description"] == "seeded while serving"

    revoked = admin(own_kmsd, "revoke-access-key", key_id)
    assert revoked.returncode == 0 and "revoked " + key_id in revoked.stdout
    assert error_code(lambda: ops.list_keys()) == "UnrecognizedClientException"

    # A refusal comes back as the CLI's error, and changes nothing.
    again = admin(own_kmsd, "create-account", "--id", "555566667777", "--name", "twice")
    assert again.returncode != 0 and "already exists" in again.stderr
    assert "twice" not in admin(own_kmsd, "list-accounts").stdout
    anchor = admin(own_kmsd, "anchor-audit")
    assert anchor.returncode != 0 and "anchored already" in anchor.stderr

    # Every change is in the audit trail.
    own_kmsd.stop()
    assert not os.path.exists(socket_path), "the socket goes with kmsd"
    os.rename(os.path.join(own_kmsd.directory, "root.key.away"), os.path.join(own_kmsd.directory, "root.key"))
    trail = subprocess.run([KMSD, "audit", "tail", "--store", own_kmsd.store, "--limit", "1000"], capture_output=True, text=True, check=True).stdout
    for operation in ["CreateAccount", "CreateAccessKey", "Seed", "RevokeAccessKey"]:
        assert '"operation":"%s"' % operation in trail, operation
    assert secret not in trail and "SEEDED1KEY" not in trail
    # Stopped: the same command works on the store itself.
    assert "555566667777\tlater" in admin(own_kmsd, "list-accounts").stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_use_the_admin_socket(own_kmsd):
    """With the store's directory open to everyone, the socket's own mode keeps others out."""
    os.chmod(own_kmsd.directory, 0o755)
    before = admin(own_kmsd, "list-accounts").stdout
    attempt = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
                              KMSD, "admin", "create-account", "--id", "999988887777", "--name", "intruder", "--store", own_kmsd.store],
                             capture_output=True, text=True, timeout=60)
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, attempt.stdout + attempt.stderr
    assert admin(own_kmsd, "list-accounts").stdout == before


def test_a_socket_left_by_a_killed_kmsd_does_not_stop_the_next(tmp_path):
    """A kmsd killed with SIGKILL leaves its socket behind: admin falls back to the store, and
    the next kmsd replaces the socket."""
    from conftest import Kmsd
    server = Kmsd(str(tmp_path))
    try:
        server.process.kill()
        server.process.wait()
        socket_path = server.store + ".admin.sock"
        assert os.path.exists(socket_path)
        listed = admin(server, "list-accounts")
        assert listed.returncode == 0 and listed.stdout.strip(), listed.stderr
        restarted = subprocess.Popen([KMSD, "serve", "--store", server.store, "--listen", "tcp://127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in restarted.stdout:
                if "kmsd: ready" in line:
                    break
            assert restarted.poll() is None
            made = admin(server, "create-account", "--name", "after restart")
            assert made.returncode == 0 and "(after restart)" in made.stdout, made.stderr
        finally:
            restarted.terminate()
            restarted.wait(timeout=30)
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_admin_sends_nothing_to_a_socket_another_user_planted():
    """A store in a directory others can write (sticky, like /tmp): another user's socket at the
    admin path gets no request — a given secret never reaches it — and kmsd still starts."""
    import pathlib
    import shutil
    import tempfile
    import time
    top = tempfile.mkdtemp(prefix="kmsd-planted-")  # in /tmp: every parent is open to the other user
    try:
        os.chmod(top, 0o755)
        shared = pathlib.Path(top) / "shared"
        shared.mkdir()
        os.chmod(shared, 0o1777)
        planted_socket(shared)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def planted_socket(shared):
    import time
    store = str(shared / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", "111122223333"], check=True, capture_output=True)
    log = shared / "planted.log"
    planted = subprocess.Popen(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", "python3", "-c", """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
while True:
    c, _ = s.accept()
    data = c.recv(65536)
    open(sys.argv[2], "ab").write(data)
    c.sendall(b'{"output": "revoked"}')
    c.close()
""", store + ".admin.sock", str(log)])
    try:
        for _ in range(100):
            if os.path.exists(store + ".admin.sock"):
                break
            time.sleep(0.05)
        secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"
        attempt = subprocess.run([KMSD, "admin", "create-access-key", "--store", store, "--account", "111122223333",
                                  "--access-key-id", "AKIAIOSFODNN7PLANTED", "--secret-access-key", secret],
                                 capture_output=True, text=True, timeout=60)
        assert attempt.returncode != 0 and "neither root nor the store's owner" in attempt.stderr, attempt.stdout + attempt.stderr
        assert not log.exists() or secret.encode() not in log.read_bytes()
        # kmsd starts anyway (without its admin socket, and says so).
        server = subprocess.Popen([KMSD, "serve", "--store", store, "--listen", "tcp://127.0.0.1:0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            output = ""
            for line in server.stdout:
                output += line
                if "kmsd: ready" in line:
                    break
            assert server.poll() is None and "writable by others" in output, output
        finally:
            # Its output is read to the end while it stops: a full pipe would hold its last
            # log line, and it with it (this once outlived the test).
            server.terminate()
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()
    finally:
        planted.kill()
        planted.wait()
