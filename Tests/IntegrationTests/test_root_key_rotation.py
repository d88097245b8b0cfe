"""`kmsd admin rotate-root-key` against running kmsd processes: the store is sealed again under a
new root key while kmsd serves it, with the real aws CLI and boto3 as clients. What clients hold
(ciphertexts, key IDs, KeyMaterialIds, access keys) goes on working; the audit trail verifies
under the new key; the old key opens nothing; and the other instances of a shared PostgreSQL store
take the rotation up (given the new key beforehand) or stop serving and say why."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time

import botocore.exceptions
import pytest

from conftest import ACCOUNT, KMSD, REGION, Kmsd
from kmsd_instances import Instance, client
from test_postgres_shared import BOUND, initialise, outcome, seconds_until


def run(*args, timeout=60):
    return subprocess.run([KMSD, *args], capture_output=True, text=True, timeout=timeout)


def key_hex(path):
    return open(path).read().strip()


def aws(server, *args):
    """The real aws CLI against `server` (JSON out)."""
    result = subprocess.run(["aws", "kms", *args, "--endpoint-url", server.endpoint, "--region", REGION, "--output", "json"],
                            env=server.client_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_a_serving_kmsd_rotates_its_root_key_live_and_then_opens_under_the_new_key_only():
    with tempfile.TemporaryDirectory(prefix="kmsd-rotate-") as directory:
        server = Kmsd(directory)
        try:
            kms = server.client()
            key = kms.create_key(Description="before")["KeyMetadata"]["KeyId"]
            kms.enable_key_rotation(KeyId=key)
            material_id = kms.describe_key(KeyId=key)["KeyMetadata"].get("CurrentKeyMaterialId")
            sealed = kms.encrypt(KeyId=key, Plaintext=b"sealed before the rotation")["CiphertextBlob"]
            data_key = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
            old_root = os.path.join(directory, "root.key")
            new_root = os.path.join(directory, "new-root.key")

            # A key file others may read or write is not used (whoever can write it chooses the key).
            with open(new_root, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            os.chmod(new_root, 0o644)
            loose = run("admin", "rotate-root-key", "--store", server.store, "--new-root-key-file", new_root)
            assert loose.returncode != 0 and "mode 0644" in loose.stderr, loose.stderr
            os.unlink(new_root)

            rotated = run("admin", "rotate-root-key", "--store", server.store, "--new-root-key-file", new_root)
            assert rotated.returncode == 0, rotated.stderr
            assert "root key rotated from " in rotated.stdout and "new root key: " + new_root in rotated.stdout
            # The new key's file was made with its final mode, and is a key unlike the old one.
            assert stat.S_IMODE(os.stat(new_root).st_mode) == 0o600
            assert len(key_hex(new_root)) == 64 and key_hex(new_root) != key_hex(old_root)

            # Live: the same process serves on — old ciphertexts, old data keys, new keys — and the
            # aws CLI signs with the same access key.
            assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"sealed before the rotation"
            assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
            assert kms.describe_key(KeyId=key)["KeyMetadata"].get("CurrentKeyMaterialId") == material_id
            after = aws(server, "create-key", "--description", "after")["KeyMetadata"]["KeyId"]
            assert aws(server, "describe-key", "--key-id", after)["KeyMetadata"]["Enabled"]
            server.stop()

            # Neither key appears in the log or in the store's files.
            log = open(server.log_path).read()
            store_bytes = b"".join(open(os.path.join(directory, name), "rb").read() for name in os.listdir(directory)
                                   if name.startswith("keys.sqlite") and os.path.isfile(os.path.join(directory, name)))
            for path in (old_root, new_root):
                assert key_hex(path) not in log
                assert bytes.fromhex(key_hex(path)) not in store_bytes

            # The trail verifies whole under the new key (across the rotation); not under the old.
            verified = run("audit", "verify", "--store", server.store, "--root-key-file", new_root)
            assert verified.returncode == 0, verified.stdout + verified.stderr
            refused = run("audit", "verify", "--store", server.store, "--root-key-file", old_root)
            assert refused.returncode != 0 and "root key was rotated" in refused.stderr + refused.stdout

            # Restarted with the old key alone: refused, with the reason.
            failed = run("serve", *server.serve_args, timeout=60)
            assert failed.returncode != 0 and "does not match" in failed.stdout + failed.stderr

            # With the new key as its next (the window before the operator installs it): serves, and says so.
            server.log = open(server.log_path, "a")
            server.serve_args += ["--next-root-key-file", new_root]
            server.start()
            assert "root key was rotated to the next root key" in open(server.log_path).read()
            assert server.client().decrypt(CiphertextBlob=sealed)["Plaintext"] == b"sealed before the rotation"
            server.stop()

            # The new key installed as the root key: serves as before.
            shutil.copy(new_root, old_root)
            server.log = open(server.log_path, "a")
            server.serve_args = server.serve_args[:-2]
            server.start()
            kms = server.client()
            assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"sealed before the rotation"
            assert kms.describe_key(KeyId=after)["KeyMetadata"]["Description"] == "after"
        finally:
            server.stop()


def test_shared_instances_take_a_rotation_up_or_stop_and_say_why(postgres):
    """a rotates through its admin socket; b was given the new key (--next-root-key-file) and
    serves on within the bound; c was not, and refuses requests (clients move to another
    instance) and logs that the root key was rotated. Restarted with the new key, c serves."""
    with tempfile.TemporaryDirectory(prefix="kmsd-rotate-shared-") as directory:
        url, root, credentials = initialise(postgres, directory)
        new_root = os.path.join(directory, "new-root.key")
        descriptor = os.open(new_root, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, os.urandom(32).hex().encode() + b"\n")
        os.close(descriptor)
        store_args = ["--store", url, *root]
        instances = []
        try:
            a = Instance("a", store_args, directory, shared=True)
            b = Instance("b", store_args + ["--next-root-key-file", new_root], directory, shared=True)
            c = Instance("c", store_args, directory, shared=True)
            instances += [a, b, c]
            kms = [client(instance, credentials) for instance in (a, b, c)]
            key = kms[0].create_key(Description="shared")["KeyMetadata"]["KeyId"]
            sealed = kms[0].encrypt(KeyId=key, Plaintext=b"across instances")["CiphertextBlob"]
            assert seconds_until(lambda: outcome(lambda: kms[2].decrypt(CiphertextBlob=sealed)) == "served") < BOUND

            rotated = run("admin", "rotate-root-key", "--store", url, *root, "--admin-socket", os.path.join(directory, "a.admin.sock"),
                          "--new-root-key-file", new_root)
            assert rotated.returncode == 0, rotated.stderr
            assert "new root key:" not in rotated.stdout  # the file existed: it was used, not replaced

            assert kms[0].decrypt(CiphertextBlob=sealed)["Plaintext"] == b"across instances"
            # b takes it up at its next poll: it serves, and its changes reach a.
            assert seconds_until(lambda: outcome(lambda: kms[1].decrypt(CiphertextBlob=sealed)) == "served") < BOUND
            made = kms[1].create_key(Description="made on b after the rotation")["KeyMetadata"]["KeyId"]
            assert seconds_until(lambda: outcome(lambda: kms[0].describe_key(KeyId=made)) == "served") < BOUND
            # c cannot: it refuses (KMSInternalException, which clients take as "try another
            # instance") within the bound, and its log says why.
            assert seconds_until(lambda: outcome(lambda: kms[2].decrypt(CiphertextBlob=sealed)) == "KMSInternalException", 5) < 5
            assert seconds_until(lambda: "root key was rotated (by another instance)" in c.text(), 5) < 5

            # One trail, verified whole under the new key.
            verified = run("audit", "verify", "--store", url, "--root-key-file", new_root)
            assert verified.returncode == 0, verified.stdout + verified.stderr

            # c restarted with the new key as its next: serves again, with the changes made meanwhile.
            c.stop()
            c.args += ["--next-root-key-file", new_root]
            c.start()
            assert kms[2].decrypt(CiphertextBlob=sealed)["Plaintext"] == b"across instances"
            assert kms[2].describe_key(KeyId=made)["KeyMetadata"]["Description"] == "made on b after the rotation"
        finally:
            for instance in instances:
                if instance.process.poll() is None:
                    instance.stop()
