"""Several kmsd instances serving one PostgreSQL store at once (`kmsd serve --shared`), each a
process of its own: every instance answers every request; a change made on one is refused or
served by the others within the stated bound (1 s); changes made at the same moment on several
are all kept, and a name is taken once; a mixed load at 64 connections spread over three
instances loses no request while one is killed with SIGKILL and restarted; the one audit trail
verifies; an instance that cannot confirm its state refuses requests; an edited store is not
loaded."""
import os
import subprocess
import tempfile
import threading
import time

import pytest

import kmsd_load
from conftest import ACCOUNT, KMSD
from kmsd_instances import FreezingProxy, Instance, client
from test_kmsd_metrics import samples, scrape, value

import botocore.exceptions

# docs/KMS.md, "Several instances serving one PostgreSQL store": a change is served everywhere
# within this many seconds of its commit, or refused.
BOUND = 1.0


def initialise(postgres, directory, url=None):
    url = url or postgres.new_database()
    root = ["--root-key-file", os.path.join(directory, "root.key")]
    out = subprocess.run([KMSD, "init", "--store", url, *root, "--audit-anchor", os.path.join(directory, "anchor"), "--account", ACCOUNT],
                         check=True, capture_output=True, text=True).stdout
    credentials = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(("access key id", "secret access key"))]
    return url, root, credentials


@pytest.fixture()
def trio(postgres):
    with tempfile.TemporaryDirectory(prefix="kmsd-shared-") as directory:
        url, root, credentials = initialise(postgres, directory)
        store_args = ["--store", url, *root]
        instances = []
        try:
            for name in "abc":
                metrics = ["--metrics", "unix:" + os.path.join(directory, name + ".metrics")]
                instances.append(Instance(name, store_args + metrics, directory, shared=True))
            yield instances, credentials, store_args + ["--audit-anchor", os.path.join(directory, "anchor")], directory
        finally:
            for instance in instances:
                if instance.process.poll() is None:
                    instance.stop()


def error_code(call):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def seconds_until(condition, limit=10):
    """How long until `condition()` holds, asked every 5 ms (fails past `limit`)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < limit
        time.sleep(0.005)
    return time.monotonic() - start


def outcome(call, done="served"):
    """`done` if `call()` succeeds, else the AWS error code it was refused with."""
    try:
        call()
        return done
    except botocore.exceptions.ClientError as error:
        return error.response["Error"]["Code"]


def refuses(call, code):
    return outcome(call) == code


def test_every_instance_serves_and_a_change_on_one_reaches_the_others_within_the_bound(trio):
    (a, b, c), credentials, _, directory = trio
    kms = [client(instance, credentials) for instance in (a, b, c)]
    key = kms[0].create_key(Description="shared")["KeyMetadata"]["KeyId"]
    # Made on a, used on b and c at once (a management call catches up with the store first;
    # a cryptographic one within the bound).
    assert seconds_until(lambda: not refuses(lambda: kms[1].describe_key(KeyId=key), "NotFoundException")) < BOUND
    sealed = kms[1].encrypt(KeyId=key, Plaintext=b"across instances")["CiphertextBlob"]
    assert kms[2].decrypt(CiphertextBlob=sealed)["Plaintext"] == b"across instances"

    kms[0].disable_key(KeyId=key)
    disabled = time.monotonic()
    for other in kms[1:]:
        # Served at most within the bound; refused as disabled (or as unconfirmed) after it.
        outcomes = []
        while not outcomes or outcomes[-1][1] != "DisabledException":
            outcomes.append((time.monotonic() - disabled, outcome(lambda: other.decrypt(CiphertextBlob=sealed))))
            assert outcomes[-1][0] < 10, outcomes
        assert all(t < BOUND for t, outcome in outcomes if outcome == "served"), outcomes
        assert outcomes[-1][0] < BOUND, outcomes
    kms[2].enable_key(KeyId=key)
    assert seconds_until(lambda: not refuses(lambda: kms[0].decrypt(CiphertextBlob=sealed), "DisabledException")) < BOUND

    # An access key made and revoked through one instance's admin socket.
    def admin(instance, *args):
        return subprocess.run([KMSD, "admin", *args, "--store", instance.args[1], "--admin-socket",
                               os.path.join(directory, instance.name + ".admin.sock")], capture_output=True, text=True, timeout=30)
    created = admin(a, "create-access-key", "--account", ACCOUNT)
    assert created.returncode == 0, created.stderr
    key_id = created.stdout.split("access key id: ")[1].split()[0]
    secret = created.stdout.split("secret access key: ")[1].split()[0]
    ops = client(c, [key_id, secret])
    assert seconds_until(lambda: not refuses(lambda: ops.list_keys(), "UnrecognizedClientException")) < BOUND
    assert admin(b, "revoke-access-key", key_id).returncode == 0
    for instance in (a, c):
        revoked = client(instance, [key_id, secret])
        assert seconds_until(lambda: refuses(lambda: revoked.list_keys(), "UnrecognizedClientException")) < BOUND

    # Each instance's metrics say how old its confirmed view is (its replication lag) and how
    # often it loaded what the others changed.
    status, text = scrape(os.path.join(directory, "c.metrics"))
    found = samples(text)
    assert status.endswith("200 OK") and value(found, "kmsd_store_reloads_total") >= 3
    assert 0 <= value(found, "kmsd_store_follow_age_seconds") < BOUND


def test_changes_made_at_once_on_every_instance_are_all_kept(trio):
    """Each instance drafts a change on the state it holds; the store takes it only if nobody
    changed the store meanwhile, else the instance loads it again and drafts anew: no tag lost, and
    one of many CreateAlias calls for one name succeeds."""
    (a, b, c), credentials, _, _ = trio
    kms = [client(instance, credentials) for instance in (a, b, c)]
    key = kms[0].create_key()["KeyMetadata"]["KeyId"]
    outcomes = []

    def tag(index):
        outcomes.append(outcome(lambda: kms[index % 3].tag_resource(KeyId=key, Tags=[{"TagKey": "t%d" % index, "TagValue": str(index)}]),
                                "tagged"))

    def alias(index):
        outcomes.append(outcome(lambda: kms[index % 3].create_alias(AliasName="alias/once", TargetKeyId=key), "created"))

    threads = [threading.Thread(target=tag, args=(i,)) for i in range(30)] + [threading.Thread(target=alias, args=(i,)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["AlreadyExistsException"] * 8 + ["created"] + ["tagged"] * 30
    for instance in kms:
        def tags():
            return {t["TagKey"] for t in instance.list_resource_tags(KeyId=key, Limit=50)["Tags"]}
        assert seconds_until(lambda: tags() == {"t%d" % i for i in range(30)}) < BOUND, tags()


def test_three_instances_under_load_one_killed_and_restarted(trio):
    """64 connections of mixed load spread over the three, whose client moves to another instance
    on a connection failure or a 5xx; b is killed with SIGKILL at 3 s and started again at 6 s, c at
    9 s and again at 12 s. Nothing fails after the client's retries, no key is lost, the state is the
    same seen from every instance, and the one trail verifies, with records from each."""
    (a, b, c), credentials, store_args, _ = trio
    kms = client(a, credentials)
    keys = [kms.create_key(Description="load %d" % i)["KeyMetadata"]["KeyId"] for i in range(6)]
    figures = {}
    load = threading.Thread(target=lambda: figures.update(kmsd_load.run(
        [a.port, b.port, c.port], credentials[0], credentials[1], keys, None, 16, connections=64, processes=4,
        mix=kmsd_load.RETRY_SAFE_MIX, spread=True)))
    load.start()
    for victim in (b, c):
        time.sleep(3)
        victim.kill()
        time.sleep(3)
        victim.start()
    load.join(timeout=120)
    assert not load.is_alive()
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["operations"] > 1000 and figures["failovers"] > 0, figures

    views = []
    for instance in (a, b, c):
        other = client(instance, credentials)
        listed = {k["KeyId"] for k in other.list_keys(Limit=1000)["Keys"]}
        assert set(keys) <= listed
        views.append(sorted((k, tuple(sorted(t["TagKey"] for t in other.list_resource_tags(KeyId=k, Limit=50)["Tags"]))) for k in keys))
    assert views[0] == views[1] == views[2]

    # Verified beside the running instances (read-only, one snapshot), then with them stopped
    # (every record checked as at an open).
    beside = subprocess.run([KMSD, "audit", "verify", *store_args], capture_output=True, text=True, timeout=120)
    assert beside.returncode == 0 and "read-only" in beside.stdout and "intact" in beside.stdout, beside.stdout + beside.stderr
    for instance in (a, b, c):
        instance.stop()
    verified = subprocess.run([KMSD, "audit", "verify", *store_args], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and "intact" in verified.stdout.lower(), verified.stdout + verified.stderr


def test_an_instance_that_cannot_confirm_its_state_refuses_requests(postgres):
    """a reaches PostgreSQL through a network that goes silent: within the bound it refuses every
    request with a 5xx (so clients go to another instance), before its session watchdog stops it;
    meanwhile a key disabled through b is never served by a."""
    with tempfile.TemporaryDirectory(prefix="kmsd-shared-cut-") as directory:
        url, root, credentials = initialise(postgres, directory)
        name = url.split("/")[3].split("?")[0]
        proxy = FreezingProxy(os.path.join(postgres.directory, ".s.PGSQL.5432"))
        through_proxy = "postgresql://kmsd@127.0.0.1:%d/%s" % (proxy.port, name)
        a = Instance("a", ["--store", through_proxy, *root], directory, shared=True)
        b = Instance("b", ["--store", url, *root], directory, shared=True)
        try:
            key = client(b, credentials).create_key()["KeyMetadata"]["KeyId"]
            sealed = client(a, credentials).encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
            proxy.freeze()
            client(b, credentials).disable_key(KeyId=key)
            cut = client(a, credentials)
            outcomes = []
            start = time.monotonic()
            while a.process.poll() is None and time.monotonic() - start < 10:
                try:
                    outcomes.append((time.monotonic() - start, outcome(lambda: cut.decrypt(CiphertextBlob=sealed))))
                except botocore.exceptions.BotoCoreError:
                    break  # the process stopped
                time.sleep(0.02)
            served = [t for t, outcome in outcomes if outcome == "served"]
            assert not served or max(served) < BOUND + 0.1, outcomes
            assert "KMSInternalException" in {outcome for _, outcome in outcomes}, outcomes
            deadline = time.time() + 10
            while a.process.poll() is None:
                assert time.time() < deadline, a.text()
                time.sleep(0.05)
            assert a.process.returncode == 75, a.text()
            assert refuses(lambda: client(b, credentials).decrypt(CiphertextBlob=sealed), "DisabledException")
        finally:
            for instance in (a, b):
                if instance.process.poll() is None:
                    instance.stop()


def test_an_instance_cut_off_in_the_middle_of_a_write_does_not_stop_the_others(postgres):
    """a commits its audit records every 100 ms under load when its network to PostgreSQL goes
    silent, maybe holding the writers' turn: the server ends that session (idle in a transaction
    for 1.5 s), so b, waiting for the turn, goes on serving and changing keys, and stays up."""
    with tempfile.TemporaryDirectory(prefix="kmsd-shared-wedge-") as directory:
        url, root, credentials = initialise(postgres, directory)
        name = url.split("/")[3].split("?")[0]
        proxy = FreezingProxy(os.path.join(postgres.directory, ".s.PGSQL.5432"))
        a = Instance("a", ["--store", "postgresql://kmsd@127.0.0.1:%d/%s" % (proxy.port, name), *root], directory, shared=True)
        b = Instance("b", ["--store", url, *root], directory, shared=True)
        stop = threading.Event()
        try:
            key = client(b, credentials).create_key()["KeyMetadata"]["KeyId"]

            def load():
                cut = client(a, credentials)
                while not stop.is_set():
                    try:
                        cut.encrypt(KeyId=key, Plaintext=b"x")
                    except Exception:
                        time.sleep(0.05)
            threads = [threading.Thread(target=load) for _ in range(8)]
            for thread in threads:
                thread.start()
            time.sleep(1)
            proxy.freeze()
            kms, failures, changes = client(b, credentials), [], 0
            end = time.monotonic() + 6
            while time.monotonic() < end:
                try:
                    kms.encrypt(KeyId=key, Plaintext=b"y")
                    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "during", "TagValue": str(changes)}])
                    changes += 1
                except botocore.exceptions.ClientError as error:
                    failures.append(error.response["Error"]["Message"])
                time.sleep(0.1)
            assert b.process.poll() is None, b.text()
            assert failures == [] and changes > 10, (failures, changes)
            assert a.process.wait(timeout=10) == 75, a.text()
        finally:
            stop.set()
            for instance in (a, b):
                if instance.process.poll() is None:
                    instance.stop()


def test_an_edited_store_is_not_loaded(trio, postgres):
    """Whoever can write the database (no root key) enables a disabled key in its row; the next
    change made through a, to another key, makes b and c read that key's row alone (the change
    feed): each keeps the state it checked, and the key is refused as disabled everywhere. An
    instance opening the store reads every row, and refuses it, saying why. Then the state digest
    is deleted and the trail cut: every instance refuses."""
    (a, b, c), credentials, store_args, _ = trio
    kms = client(a, credentials)
    key, other = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    sealed = kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key)
    time.sleep(BOUND)
    postgres.psql(store_args[1], "UPDATE keys SET record = replace(record, '\"Disabled\"', '\"Enabled\"') WHERE key_id = '%s'" % key)
    kms.tag_resource(KeyId=other, Tags=[{"TagKey": "move", "TagValue": "on"}])
    time.sleep(BOUND)
    for instance in (a, b, c):
        instance_client = client(instance, credentials)
        assert instance_client.list_resource_tags(KeyId=other)["Tags"] == [{"TagKey": "move", "TagValue": "on"}]
        for _ in range(5):
            assert error_code(lambda: instance_client.decrypt(CiphertextBlob=sealed)) == "DisabledException"
            time.sleep(0.1)
    c.stop()
    restarted = subprocess.run([KMSD, "serve", *c.args], capture_output=True, text=True, timeout=60)
    assert restarted.returncode != 0 and "was changed outside kmsd" in restarted.stdout + restarted.stderr, restarted.stdout + restarted.stderr
    # An audit record altered in place: verify, beside the running instances, says which.
    postgres.psql(store_args[1], "UPDATE audit SET record = convert_to(replace(convert_from(record, 'UTF8'), 'TagResource', 'TagRezource'), 'UTF8') "
                                 "WHERE convert_from(record, 'UTF8') LIKE '%TagResource%'")
    broken = subprocess.run([KMSD, "audit", "verify", *store_args], capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "altered" in broken.stdout, broken.stdout + broken.stderr
    postgres.psql(store_args[1], "DELETE FROM meta WHERE name = 'state_digest'; DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 5 FROM audit)")
    for instance in (a, b):
        # The cut is seen first (the last record this instance saw is gone), or the digest.
        seconds_until(lambda: "no longer holds record" in instance.text() or "state digest is missing" in instance.text())
        assert seconds_until(lambda: refuses(lambda: client(instance, credentials).list_keys(), "KMSInternalException")) < 2 * BOUND


def test_a_store_put_back_is_refused_after_a_restart_too(trio, postgres):
    """Each instance's audit anchor follows the trail the others write, not only its own writes:
    an older copy of the store put back is refused by c when it starts again, although c itself
    wrote nothing since the copy; `kmsd audit verify` beside the running instances, given c's
    anchor, reports it too."""
    (a, b, c), credentials, store_args, directory = trio
    url = store_args[1]
    kms = client(a, credentials)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    time.sleep(1.5)
    tables = ["meta", "accounts", "keys", "key_material", "aliases", "access_keys", "grants", "identities", "custom_key_stores", "audit"]
    postgres.psql(url, "BEGIN ISOLATION LEVEL REPEATABLE READ; CREATE SCHEMA copy; "
                       + " ".join("CREATE TABLE copy.%s AS SELECT * FROM public.%s;" % (t, t) for t in tables) + " COMMIT;")
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    for _ in range(5):
        kms.describe_key(KeyId=key)
    time.sleep(1.5)  # c's anchor follows what a wrote
    postgres.psql(url, "BEGIN; SELECT pg_advisory_xact_lock(%d); " % 0x6b6d7365
                  + " ".join("DELETE FROM public.%s;" % t for t in reversed(tables))
                  + " ".join("INSERT INTO public.%s SELECT * FROM copy.%s;" % (t, t) for t in tables) + " COMMIT;")
    anchor = os.path.join(directory, "c.anchor")
    beside = subprocess.run([KMSD, "audit", "verify", *store_args[:-2], "--audit-anchor", anchor], capture_output=True, text=True, timeout=60)
    assert beside.returncode == 1 and "no longer holds record" in beside.stdout, beside.stdout + beside.stderr
    c.stop()
    restarted = subprocess.run([KMSD, "serve", *c.args], capture_output=True, text=True, timeout=60)
    assert restarted.returncode != 0 and "ends before its anchor" in restarted.stdout + restarted.stderr, restarted.stdout + restarted.stderr


def test_keys_made_in_a_token_by_drafts_made_again_do_not_stay_there(postgres, monkeypatch):
    """CreateKey in a CloudHSM-style store makes the key in the token while drafting; on a shared
    store a draft another instance's commit made stale is drafted again, with a new key ID, and
    makes a second token key. Only the committed one may stay: with CreateKey and TagResource
    racing on two instances, the token ends with as many keys as the store has."""
    from test_custom_key_stores import CLUSTER, MODULE, PASSWORD, Tokens, token_objects
    with tempfile.TemporaryDirectory(prefix="kmsd-shared-token-") as directory:
        tokens = Tokens(directory)
        tokens.init(CLUSTER, PASSWORD)
        monkeypatch.setenv("SOFTHSM2_CONF", tokens.conf)
        url, root, credentials = initialise(postgres, directory)
        instances = [Instance(name, ["--store", url, *root, "--pkcs11-module", MODULE], directory, shared=True) for name in "ab"]
        try:
            kms = [client(instance, credentials) for instance in instances]
            store = kms[0].create_custom_key_store(CustomKeyStoreName="hsm", CloudHsmClusterId=CLUSTER,
                                                   TrustAnchorCertificate="-----BEGIN CERTIFICATE-----",
                                                   KeyStorePassword=PASSWORD)["CustomKeyStoreId"]
            kms[0].connect_custom_key_store(CustomKeyStoreId=store)
            tagged = kms[0].create_key()["KeyMetadata"]["KeyId"]
            for other in kms:
                seconds_until(lambda: other.describe_custom_key_stores(CustomKeyStoreId=store)["CustomKeyStores"][0]["ConnectionState"] == "CONNECTED")
            before = token_objects(directory)
            outcomes = []

            def create(index):
                outcomes.append(outcome(lambda: kms[index % 2].create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=store), "created"))

            def tag(index):
                for round_number in range(5):
                    kms[index % 2].tag_resource(KeyId=tagged, Tags=[{"TagKey": "t%d" % index, "TagValue": str(round_number)}])
            threads = [threading.Thread(target=create, args=(i,)) for i in range(12)] + [threading.Thread(target=tag, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert outcomes == ["created"] * 12, outcomes

            def in_store():
                return [k for k in kms[0].list_keys(Limit=1000)["Keys"]
                        if kms[0].describe_key(KeyId=k["KeyId"])["KeyMetadata"].get("CustomKeyStoreId") == store]
            assert seconds_until(lambda: len(in_store()) == 12) < BOUND + 1  # b's last keys, as a loads them
            assert token_objects(directory) == before + 12
        finally:
            for instance in instances:
                if instance.process.poll() is None:
                    instance.stop()


def test_shared_and_single_writer_instances_do_not_mix(postgres):
    with tempfile.TemporaryDirectory(prefix="kmsd-shared-mix-") as directory:
        url, root, _ = initialise(postgres, directory)
        a = Instance("a", ["--store", url, *root], directory, shared=True)
        try:
            alone = subprocess.run([KMSD, "serve", "--store", url, *root, "--audit-anchor", os.path.join(directory, "anchor"),
                                    "--listen", "tcp://127.0.0.1:0", "--admin-socket", os.path.join(directory, "x.sock")],
                                   capture_output=True, text=True, timeout=30)
            assert alone.returncode != 0 and "in use by kmsd instances serving it together" in alone.stdout + alone.stderr
        finally:
            a.stop()
        sqlite = subprocess.run([KMSD, "serve", "--shared", "--store", os.path.join(directory, "keys.sqlite"), *root,
                                 "--listen", "tcp://127.0.0.1:0"], capture_output=True, text=True, timeout=30)
        assert sqlite.returncode != 0 and "only a PostgreSQL store" in sqlite.stdout + sqlite.stderr
        both = subprocess.run([KMSD, "serve", "--shared", "--standby", "--store", url, *root], capture_output=True, text=True, timeout=30)
        assert both.returncode != 0 and "choose one" in both.stderr
