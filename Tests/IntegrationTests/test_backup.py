"""kmsd backup and restore, through boto3: a backup taken while kmsd serves (and writes) restores
into a new store of either backend — SQLite to PostgreSQL and back — which opens under the same
root key, decrypts what the original encrypted, keeps every key, alias, grant and access key,
and verifies its audit trail; a backup cut short or edited restores nothing; restoring over an
existing store is refused; a restore older than the audit anchor is refused as a rollback."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading

import pytest

from conftest import KMSD, Kmsd


def kmsd_command(*arguments, check=True):
    result = subprocess.run([KMSD, *arguments], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture()
def source():
    with tempfile.TemporaryDirectory(prefix="kmsd-backup-") as directory:
        server = Kmsd(directory)
        try:
            yield server
        finally:
            server.stop()


def serve_and_check(directory, store_args, server, facts):
    """Serves the restored store and checks that everything in `facts` is there."""
    restored = Kmsd.__new__(Kmsd)
    restored.directory, restored.store, restored.store_args = directory, store_args[1], store_args
    restored.socket_path = os.path.join(directory, "restored.sock")
    restored.access_key, restored.secret_key = server.access_key, server.secret_key
    restored.log_path = os.path.join(directory, "restored.log")
    restored.log = open(restored.log_path, "w")
    restored.serve_args = [*store_args, "--listen", "tcp://127.0.0.1:0"]
    restored.start()
    try:
        kms = restored.client()
        assert kms.decrypt(CiphertextBlob=facts["sealed"])["Plaintext"] == b"before the backup"
        assert {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]} >= set(facts["keys"])
        assert [a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/backed-up"] == [facts["keys"][0]]
        assert [g["GrantId"] for g in kms.list_grants(KeyId=facts["keys"][0])["Grants"]] == [facts["grant"]]
        assert kms.describe_key(KeyId=facts["keys"][1])["KeyMetadata"]["KeyState"] == "Disabled"
    finally:
        restored.stop()
    verified = kmsd_command("audit", "verify", *store_args)
    assert "intact" in verified.stdout


def test_backup_while_serving_restores_on_either_backend(source, postgres):
    kms = source.client()
    keys = [kms.create_key(Description="backed up %d" % i)["KeyMetadata"]["KeyId"] for i in range(3)]
    kms.create_alias(AliasName="alias/backed-up", TargetKeyId=keys[0])
    grant = kms.create_grant(KeyId=keys[0], GranteePrincipal="arn:aws:iam::111122223333:root", Operations=["Decrypt"])["GrantId"]
    kms.disable_key(KeyId=keys[1])
    kms.rotate_key_on_demand(KeyId=keys[0])
    facts = {"keys": keys, "grant": grant, "sealed": kms.encrypt(KeyId=keys[0], Plaintext=b"before the backup")["CiphertextBlob"]}

    with tempfile.TemporaryDirectory(prefix="kmsd-restored-") as directory:
        # Taken while a writer keeps writing: the snapshot is consistent whatever it cut across.
        stop = threading.Event()
        def writer():
            while not stop.is_set():
                kms.generate_data_key(KeyId=keys[2], KeySpec="AES_256")
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            backup = os.path.join(directory, "store.backup")
            kmsd_command("backup", "--store", source.store, "--output", backup)
        finally:
            stop.set()
            thread.join()
        assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
        assert kmsd_command("backup", "--store", source.store, "--output", backup, check=False).returncode != 0  # never over a file
        root_key = os.path.join(os.path.dirname(source.store), "root.key")

        # SQLite → PostgreSQL, then that PostgreSQL store's backup → SQLite again.
        url = postgres.new_database()
        pg_args = ["--store", url, "--root-key-file", root_key, "--audit-anchor", os.path.join(directory, "pg.anchor"),
                   "--admin-socket", os.path.join(directory, "pg.sock")]
        kmsd_command("restore", *pg_args, "--input", backup)
        kmsd_command("admin", "anchor-audit", *pg_args)
        serve_and_check(directory, pg_args, source, facts)
        second = os.path.join(directory, "from-postgres.backup")
        kmsd_command("backup", "--store", url, "--output", second)
        sqlite_args = ["--store", os.path.join(directory, "again.sqlite"), "--root-key-file", root_key]
        kmsd_command("restore", *sqlite_args, "--input", second)
        kmsd_command("admin", "anchor-audit", *sqlite_args)
        serve_and_check(directory, sqlite_args, source, facts)

        # Never over an existing store, of either kind.
        refused = kmsd_command("restore", *pg_args, "--input", backup, check=False)
        assert refused.returncode != 0 and "holds a key store already" in refused.stdout + refused.stderr
        refused = kmsd_command("restore", *sqlite_args, "--input", backup, check=False)
        assert refused.returncode != 0 and "exists" in refused.stdout + refused.stderr


def test_a_damaged_backup_restores_nothing(source, postgres):
    source.client().create_key()
    with tempfile.TemporaryDirectory(prefix="kmsd-damaged-") as directory:
        backup = os.path.join(directory, "store.backup")
        kmsd_command("backup", "--store", source.store, "--output", backup)
        lines = open(backup).read().splitlines()
        cut = os.path.join(directory, "cut.backup")
        with open(cut, "w") as f:
            f.write("\n".join(lines[:-3]) + "\n")
        target = os.path.join(directory, "target.sqlite")
        refused = kmsd_command("restore", "--store", target, "--input", cut, check=False)
        assert refused.returncode != 0 and "cut short" in refused.stdout + refused.stderr
        assert not os.path.exists(target)
        # A row twice (the audit's primary key refuses it): nothing restored, and the same
        # target takes a good backup afterwards.
        doubled = os.path.join(directory, "doubled.backup")
        audit_line = next(line for line in lines if '"t": "audit"' in line or '"t":"audit"' in line)
        header = json.loads(lines[0])
        header["rows"] += 1
        with open(doubled, "w") as f:
            f.write("\n".join([json.dumps(header)] + lines[1:-1] + [audit_line, json.dumps({"end": header["rows"]})]) + "\n")
        url = postgres.new_database()
        args = ["--store", url, "--root-key-file", os.path.join(os.path.dirname(source.store), "root.key")]
        failed = kmsd_command("restore", *args, "--input", doubled, check=False)
        assert failed.returncode != 0
        kmsd_command("restore", *args, "--input", backup)
        # An edited row (a key's record) restores, and its MAC refuses the store at the open.
        edited = os.path.join(directory, "edited.backup")
        with open(edited, "w") as f:
            for line in lines:
                row = json.loads(line)
                if row.get("t") == "keys":
                    row["r"][3] = row["r"][3].replace('"Enabled"', '"Disabled"')
                f.write(json.dumps(row) + "\n")
        url = postgres.new_database()
        args = ["--store", url, "--root-key-file", os.path.join(os.path.dirname(source.store), "root.key"),
                "--audit-anchor", os.path.join(directory, "anchor")]
        kmsd_command("restore", *args, "--input", edited)
        opened = kmsd_command("admin", "anchor-audit", *args, check=False)
        assert opened.returncode != 0 and "MAC does not verify" in opened.stdout + opened.stderr


def test_a_restore_older_than_the_anchor_is_a_rollback(source):
    kms = source.client()
    kms.create_key()
    with tempfile.TemporaryDirectory(prefix="kmsd-rollback-") as directory:
        backup = os.path.join(directory, "store.backup")
        kmsd_command("backup", "--store", source.store, "--output", backup)
        kms.create_key(Description="made after the backup")
        source.stop()
        anchor = source.store + ".audit-anchor"
        assert os.path.exists(anchor)
        restored = os.path.join(directory, "restored.sqlite")
        root_key = os.path.join(os.path.dirname(source.store), "root.key")
        kmsd_command("restore", "--store", restored, "--root-key-file", root_key, "--input", backup)
        shutil.copy(anchor, os.path.join(directory, "anchor"))
        refused = kmsd_command("audit", "verify", "--store", restored, "--root-key-file", root_key,
                               "--audit-anchor", os.path.join(directory, "anchor"), check=False)
        assert refused.returncode != 0 and "ends before its anchor" in refused.stdout + refused.stderr
        source.log = open(source.log_path, "a")
        source.start()
