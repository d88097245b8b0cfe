"""Two kmsd instances on one PostgreSQL: one serves (it holds the store's writer lock), the other
waits as a standby (`kmsd serve --standby`) and takes over when the first dies. Under a mixed
load at 64 connections whose client fails over between the two, the serving instance is killed
with SIGKILL, twice: no request fails after the client's retries, no key is lost, a key disabled
on one instance is refused by the other, and the audit trail verifies whole."""
import os
import subprocess
import tempfile
import threading
import time

import pytest

import kmsd_load
from conftest import ACCOUNT, KMSD
from kmsd_instances import FreezingProxy, Instance, client

import botocore.exceptions


@pytest.fixture()
def pair(postgres):
    with tempfile.TemporaryDirectory(prefix="kmsd-ha-") as directory:
        store_args = ["--store", postgres.new_database(), "--root-key-file", os.path.join(directory, "root.key")]
        out = subprocess.run([KMSD, "init", *store_args, "--audit-anchor", os.path.join(directory, "anchor"), "--account", ACCOUNT],
                             check=True, capture_output=True, text=True).stdout
        credentials = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(("access key id", "secret access key"))]
        a = Instance("a", store_args, directory, standby=False)
        b = Instance("b", store_args, directory, standby=True)
        try:
            yield a, b, credentials, store_args + ["--audit-anchor", os.path.join(directory, "anchor")]
        finally:
            for instance in (a, b):
                if instance.process.poll() is None:
                    instance.stop()


def test_the_standby_takes_over_under_load_and_nothing_is_lost(pair):
    a, b, credentials, store_args = pair
    assert not b.serving()
    kms = client(a, credentials)
    keys = [kms.create_key(Description="ha %d" % i)["KeyMetadata"]["KeyId"] for i in range(6)]

    # The load runs 16 s; the serving instance is killed at 4 s (a → b) and again at 10 s (b → a),
    # each time the killed one coming back as the standby.
    figures = {}
    load = threading.Thread(target=lambda: figures.update(kmsd_load.run(
        [a.port, b.port], credentials[0], credentials[1], keys, None, 16, connections=64, processes=4, mix=kmsd_load.RETRY_SAFE_MIX)))
    load.start()
    time.sleep(4)
    a.kill()
    b.wait_for("kmsd: ready", b.ready_before)
    a.start(standby=True)
    time.sleep(6)
    b.kill()
    a.wait_for("kmsd: ready", a.ready_before)
    b.start(standby=True)
    load.join(timeout=120)
    assert not load.is_alive()
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["operations"] > 1000 and figures["failovers"] > 0, figures

    # A key disabled on one instance is refused by the other once it serves.
    kms = client(a, credentials)
    sealed = kms.encrypt(KeyId=keys[0], Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=keys[0])
    a.kill()
    b.wait_for("kmsd: ready", b.ready_before)
    other = client(b, credentials)
    with pytest.raises(other.exceptions.DisabledException):
        other.decrypt(CiphertextBlob=sealed)
    # No key lost, and every one of them in the state it was left in.
    listed = {k["KeyId"] for k in other.list_keys(Limit=1000)["Keys"]}
    assert set(keys) <= listed
    assert [other.describe_key(KeyId=k)["KeyMetadata"]["Enabled"] for k in keys] == [False] + [True] * 5

    # The trail verifies whole, across the three takeovers.
    b.stop()
    verified = subprocess.run([KMSD, "audit", "verify", *store_args], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and "intact" in verified.stdout.lower(), verified.stdout + verified.stderr


def test_a_lost_session_stops_the_serving_instance(pair, postgres):
    """Fencing: when PostgreSQL ends the serving instance's session (and with it the writer lock),
    that instance stops within seconds, idle or not, and the standby takes over."""
    a, b, credentials, store_args = pair
    key = client(a, credentials).create_key()["KeyMetadata"]["KeyId"]
    name = store_args[1].split("/")[3].split("?")[0]
    postgres.psql(store_args[1], "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                 "AND database = (SELECT oid FROM pg_database WHERE datname = '%s')" % name)
    deadline = time.time() + 10
    while a.process.poll() is None:
        assert time.time() < deadline, a.text()
        time.sleep(0.05)
    assert a.process.returncode == 75 and "lost the key store's session" in a.text()
    b.wait_for("kmsd: ready", b.ready_before)
    assert client(b, credentials).describe_key(KeyId=key)["KeyMetadata"]["Enabled"]


def test_an_instance_cut_off_from_its_database_stops_within_the_bound(postgres):
    """The serving instance reaches PostgreSQL through a network that goes silent (no reset, no
    answer) while its session is ended: it stops (exit 75) within kmsd's session deadline (3 s,
    checked by a watchdog that takes no lock) instead of answering on from memory, even though a
    statement of its own hangs; the standby serves meanwhile."""
    with tempfile.TemporaryDirectory(prefix="kmsd-partition-") as directory:
        url = postgres.new_database()
        name = url.split("/")[3].split("?")[0]
        proxy = FreezingProxy(os.path.join(postgres.directory, ".s.PGSQL.5432"))
        through_proxy = "postgresql://kmsd@127.0.0.1:%d/%s" % (proxy.port, name)
        root = ["--root-key-file", os.path.join(directory, "root.key")]
        out = subprocess.run([KMSD, "init", "--store", url, *root, "--audit-anchor", os.path.join(directory, "anchor"), "--account", ACCOUNT],
                             check=True, capture_output=True, text=True).stdout
        credentials = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(("access key id", "secret access key"))]
        a = Instance("a", ["--store", through_proxy, *root], directory, standby=False)
        b = Instance("b", ["--store", url, *root], directory, standby=True)
        try:
            key = client(a, credentials).create_key()["KeyMetadata"]["KeyId"]
            proxy.freeze()
            postgres.psql(url, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                               "AND database = (SELECT oid FROM pg_database WHERE datname = '%s')" % name)
            b.wait_for("kmsd: ready", b.ready_before)
            client(b, credentials).disable_key(KeyId=key)
            deadline = time.time() + 10
            while a.process.poll() is None:
                assert time.time() < deadline, "the cut-off instance is still running: " + a.text()
                time.sleep(0.05)
            assert a.process.returncode == 75 and "no answer from PostgreSQL" in a.text()
            with pytest.raises(botocore.exceptions.ClientError):
                client(b, credentials).decrypt(CiphertextBlob=client(b, credentials).encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"])
        finally:
            for instance in (a, b):
                if instance.process.poll() is None:
                    instance.stop()


def test_a_standby_does_not_take_over_a_rolled_back_store(pair, postgres):
    """Whoever can write the database puts back an older copy of every table and ends the serving
    instance's session: the standby, whose anchor followed the trail while it waited, refuses the
    store instead of serving the old state (a disabled key enabled again, a new key gone)."""
    a, b, credentials, store_args = pair
    url = store_args[1]
    kms = client(a, credentials)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    tables = ["meta", "accounts", "keys", "key_material", "aliases", "access_keys", "grants", "identities", "custom_key_stores", "audit"]
    postgres.psql(url, "CREATE SCHEMA snap; " + " ".join("CREATE TABLE snap.%s AS SELECT * FROM public.%s;" % (t, t) for t in tables))
    kms.disable_key(KeyId=key)
    kms.create_key(Description="after the copy")
    time.sleep(1.5)  # the standby follows the trail every half second
    name = url.split("/")[3].split("?")[0]
    postgres.psql(url, "BEGIN; SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = '%s'); " % name
                  + " ".join("DELETE FROM public.%s;" % t for t in reversed(tables))
                  + " ".join("INSERT INTO public.%s SELECT * FROM snap.%s;" % (t, t) for t in tables) + " COMMIT;")
    deadline = time.time() + 30
    while b.process.poll() is None:
        assert not b.serving(), "the standby served a rolled-back store: " + b.text()
        assert time.time() < deadline, b.text()
        time.sleep(0.05)
    assert "ends before its anchor" in b.text(), b.text()
