"""kmsd on PostgreSQL (`--store postgres://...`), through the real aws CLI and boto3: everything
kmsd keeps survives a SIGKILL and a restart; one kmsd writes a store at a time (a second is
refused while the first lives, and may start once it is gone); a kmsfs volume mounts on it;
whoever can write the database but has no root key cannot edit a key's record unnoticed."""
import base64
import json
import os
import subprocess
import tempfile

import pytest

from conftest import ACCOUNT, KMSD, REGION, Kmsd
from test_mount import foreground_mount, new_volume

AWS = ["aws", "--output", "json"]


@pytest.fixture()
def kmsd_on_postgres(postgres):
    with tempfile.TemporaryDirectory(prefix="kmsd-pg-") as directory:
        server = Kmsd(directory, store=postgres.new_database())
        try:
            yield server
        finally:
            server.stop()


def aws(kmsd, *arguments):
    env = kmsd.client_environment(AWS_DEFAULT_REGION=REGION)
    result = subprocess.run([*AWS, "kms", *arguments, "--endpoint-url", kmsd.endpoint], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_everything_survives_a_sigkill_and_the_trail_verifies(kmsd_on_postgres):
    kmsd = kmsd_on_postgres
    kms = kmsd.client()
    key = kms.create_key(Description="on postgres")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/pg", TargetKeyId=key)
    kms.enable_key_rotation(KeyId=key)
    grant = kms.create_grant(KeyId=key, GranteePrincipal="arn:aws:iam::%s:root" % ACCOUNT, Operations=["Decrypt"])["GrantId"]
    doomed = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    data_key = aws(kmsd, "generate-data-key", "--key-id", "alias/pg", "--key-spec", "AES_256", "--encryption-context", "volume=v1")
    sealed = kms.encrypt(KeyId="alias/pg", Plaintext=b"kept across a kill")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key)

    kmsd.kill()
    kmsd.start()
    kms = kmsd.client()
    assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"kept across a kill"
    with tempfile.NamedTemporaryFile(suffix=".blob") as blob:
        blob.write(base64.b64decode(data_key["CiphertextBlob"]))
        blob.flush()
        opened = aws(kmsd, "decrypt", "--ciphertext-blob", "fileb://" + blob.name, "--encryption-context", "volume=v1")
    assert opened["Plaintext"] == data_key["Plaintext"]
    assert kms.describe_key(KeyId=doomed)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key)["Grants"]] == [grant]
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
    assert len(kms.list_key_rotations(KeyId=key)["Rotations"]) == 1
    assert [a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/pg"] == [key]

    # The trail, read beside the running kmsd, then verified with it stopped.
    tail = subprocess.run([KMSD, "audit", "tail", "--store", kmsd.store, "--limit", "100"], capture_output=True, text=True, check=True).stdout
    operations = [json.loads(line)["operation"] for line in tail.splitlines() if line.startswith("{")]
    assert {"CreateKey", "GenerateDataKey", "Decrypt", "RotateKeyOnDemand"} <= set(operations)
    beside = subprocess.run([KMSD, "audit", "verify", *kmsd.store_args], capture_output=True, text=True)
    assert beside.returncode == 0 and "read-only, beside it" in beside.stdout and "intact" in beside.stdout, beside.stdout + beside.stderr
    kmsd.stop()
    verified = subprocess.run([KMSD, "audit", "verify", *kmsd.store_args], capture_output=True, text=True)
    assert verified.returncode == 0 and "intact" in verified.stdout.lower(), verified.stdout + verified.stderr
    kmsd.log = open(kmsd.log_path, "a")
    kmsd.start()


def test_one_writer_at_a_time(kmsd_on_postgres):
    kmsd = kmsd_on_postgres
    second = subprocess.run([KMSD, "serve", *kmsd.store_args[:2], *kmsd.store_args[2:4], "--audit-anchor", kmsd.directory + "/anchor2",
                             "--admin-socket", kmsd.directory + "/admin2.sock", "--listen", "tcp://127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode != 0 and "in use by another kmsd" in second.stdout + second.stderr
    # The server releases the lock with the session of a killed kmsd: the next one starts.
    key = kmsd.client().create_key()["KeyMetadata"]["KeyId"]
    kmsd.kill()
    kmsd.start()
    assert kmsd.client().describe_key(KeyId=key)["KeyMetadata"]["Enabled"]


def test_a_volume_mounts_on_kmsd_on_postgres(kmsd_on_postgres):
    kmsd = kmsd_on_postgres
    key = kmsd.client().create_key(Description="volume")["KeyMetadata"]["Arn"]
    env = kmsd.client_environment()
    with new_volume("kmsfs-pg-volume-", *kmsd.volume_arguments(key), env=env) as (cipher, mount_point):
        with foreground_mount(cipher, mount_point, env=env):
            for index in range(50):
                with open(os.path.join(mount_point, "f%02d" % index), "wb") as f:
                    f.write(os.urandom(10_000 + index))
            digests = {name: open(os.path.join(mount_point, name), "rb").read() for name in os.listdir(mount_point)}
        kmsd.kill()
        kmsd.start()
        with foreground_mount(cipher, mount_point, env=env):
            assert {name: open(os.path.join(mount_point, name), "rb").read() for name in os.listdir(mount_point)} == digests


def test_a_key_record_edited_in_the_database_is_refused(kmsd_on_postgres, postgres):
    kmsd = kmsd_on_postgres
    key = kmsd.client().create_key()["KeyMetadata"]["KeyId"]
    kmsd.client().disable_key(KeyId=key)
    kmsd.stop()
    # Someone with the database's password but not the root key enables the key again.
    postgres.psql(kmsd.store, "UPDATE keys SET record = replace(record, '\"Disabled\"', '\"Enabled\"')")
    refused = subprocess.run([KMSD, "serve", *kmsd.store_args, "--listen", "tcp://127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "MAC does not verify" in refused.stdout + refused.stderr
    kmsd.log = open(kmsd.log_path, "a")
    # The fixture stops what it started; nothing runs now.
    kmsd.process = subprocess.Popen(["true"])
