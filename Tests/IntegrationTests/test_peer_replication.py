"""Multi-Region keys across two kmsd deployments, each a process with its own SQLite store and root
key, replicating over mutually authenticated TLS (`--peering`): a replica made at the peer is
Creating until it exists there, then decrypts what the primary encrypted (and the other way),
follows the primary's rotation, takes over with UpdatePrimaryRegion, and survives restarts of
both; the peer listener refuses clients without a certificate from the peers' CA, certificates
that name no peer, and peers that speak for Regions they do not serve. Each store's trail verifies."""
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import KMSD, Kmsd
from kmsd_instances import free_port

US, EU = "us-east-1", "eu-west-1"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue(directory, ca, name, stem=None):
    """A key and certificate for DNS name `name`, signed by `ca` (a path prefix: .crt and .key),
    in files named `stem` (default: the name)."""
    path = os.path.join(directory, stem or name)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path + ".key",
            "-out", path + ".csr", "-subj", "/CN=" + name)
    with open(path + ".ext", "w") as ext:
        ext.write("subjectAltName=DNS:%s\n" % name)
    openssl("x509", "-req", "-in", path + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial",
            "-out", path + ".crt", "-days", "2", "-extfile", path + ".ext")
    return path + ".crt", path + ".key"


def make_ca(directory, name):
    path = os.path.join(directory, name)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path + ".key",
            "-out", path + ".crt", "-days", "2", "-subj", "/CN=" + name)
    return path


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory(prefix="kmsd-pki-") as directory:
        ca, outsider = make_ca(directory, "peer-ca"), make_ca(directory, "outsider-ca")
        yield {
            "ca": ca + ".crt",
            "us": issue(directory, ca, "us.peer.test"),
            "eu": issue(directory, ca, "eu.peer.test"),
            "stranger": issue(directory, ca, "stranger.peer.test"),
            # The right name under the wrong CA.
            "impostor": issue(directory, outsider, "eu.peer.test", stem="impostor"),
        }


@pytest.fixture()
def deployments(pki):
    with tempfile.TemporaryDirectory(prefix="kmsd-us-") as us_dir, tempfile.TemporaryDirectory(prefix="kmsd-eu-") as eu_dir:
        ports = {"us": free_port(), "eu": free_port()}

        def peering(directory, me, other, regions):
            own = US if me == "us" else EU
            path = os.path.join(directory, "peering.yaml")
            with open(path, "w") as f:
                f.write("listen: tls://127.0.0.1:%d\nregions: [%s]\ncertificate: %s\nkey: %s\nca: %s\ninterval: 0.2\n"
                        "peers:\n  - name: %s.peer.test\n    endpoint: https://127.0.0.1:%d\n    regions: [%s]\n"
                        % (ports[me], own, pki[me][0], pki[me][1], pki["ca"], other, ports[other], regions))
            return path

        us = Kmsd(us_dir, extra_args=["--peering", peering(us_dir, "us", "eu", EU)])
        try:
            eu = Kmsd(eu_dir, extra_args=["--peering", peering(eu_dir, "eu", "us", US)])
        except BaseException:
            us.stop()
            raise
        us.peer_port, eu.peer_port = ports["us"], ports["eu"]
        try:
            yield us, eu
        finally:
            us.stop()
            eu.stop()


def eventually(check, seconds=15):
    """`check()`'s value once it returns without raising (and not None/False), within `seconds`."""
    deadline, last = time.time() + seconds, None
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - the last one is reported
            last = error
        time.sleep(0.1)
    raise AssertionError("not within %d s: %r" % (seconds, last))


def test_a_replica_in_another_deployment_decrypts_rotates_and_takes_over(deployments):
    us, eu = deployments
    east, west = us.client(region=US), eu.client(region=EU)
    created = east.create_key(MultiRegion=True, Description="global")["KeyMetadata"]
    key = created["KeyId"]
    answer = east.replicate_key(KeyId=key, ReplicaRegion=EU, Description="in Europe", Tags=[{"TagKey": "site", "TagValue": "eu"}])
    assert answer["ReplicaKeyMetadata"]["KeyState"] == "Creating"
    assert answer["ReplicaKeyMetadata"]["Arn"] == created["Arn"].replace(US, EU)

    replica = eventually(lambda: west.describe_key(KeyId=key)["KeyMetadata"])
    assert replica["KeyState"] == "Enabled" and replica["Description"] == "in Europe"
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": created["Arn"], "Region": US}
    assert west.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "site", "TagValue": "eu"}]
    assert east.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"] == [{"Arn": replica["Arn"], "Region": EU}]
    with pytest.raises(east.exceptions.AlreadyExistsException):
        east.replicate_key(KeyId=key, ReplicaRegion=EU)

    # One material in two stores: each decrypts the other's ciphertext.
    sealed = east.encrypt(KeyId=key, Plaintext=b"made in the US", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})["Plaintext"] == b"made in the US"
    data_key = west.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert east.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]

    # The primary's rotation reaches the peer.
    east.rotate_key_on_demand(KeyId=key)
    rotated = east.encrypt(KeyId=key, Plaintext=b"after rotation")["CiphertextBlob"]
    assert eventually(lambda: west.decrypt(CiphertextBlob=rotated)["Plaintext"]) == b"after rotation"
    with pytest.raises(west.exceptions.UnsupportedOperationException):
        west.rotate_key_on_demand(KeyId=key)

    # The peer's copy becomes the primary; the former primary a replica.
    east.update_primary_region(KeyId=key, PrimaryRegion=EU)
    assert east.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    eventually(lambda: west.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY")
    eventually(lambda: east.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled")
    west.rotate_key_on_demand(KeyId=key)
    from_eu = west.encrypt(KeyId=key, Plaintext=b"made in the EU")["CiphertextBlob"]
    assert eventually(lambda: east.decrypt(CiphertextBlob=from_eu)["Plaintext"]) == b"made in the EU"
    with pytest.raises(east.exceptions.UnsupportedOperationException):
        east.rotate_key_on_demand(KeyId=key)

    # Both restarted: each store holds its copy, sealed under its own root key.
    us.stop()
    eu.stop()
    us.log, eu.log = open(us.log_path, "a"), open(eu.log_path, "a")
    us.start()
    eu.start()
    east, west = us.client(region=US), eu.client(region=EU)
    for client in (east, west):
        assert client.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})["Plaintext"] == b"made in the US"
        assert client.decrypt(CiphertextBlob=from_eu)["Plaintext"] == b"made in the EU"
    assert west.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"

    # Every peer message is in each store's trail, and each trail verifies.
    for deployment in (us, eu):
        verified = subprocess.run([KMSD, "audit", "verify", "--store", deployment.store], capture_output=True, text=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        shown = subprocess.run([KMSD, "audit", "tail", "--store", deployment.store, "--limit", "10000"], capture_output=True, text=True)
        assert "SynchronizeMultiRegionKey" in shown.stdout


def peer_post(port, certificate, body, path="/kmsd-peer/v1/messages", ca=None):
    """One POST to a peer listener with `certificate` (cert, key) or none: (status, JSON)."""
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    if certificate:
        context.load_cert_chain(*certificate)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_the_peer_listener_refuses_strangers_and_what_a_peer_may_not_say(deployments, pki):
    us, eu = deployments
    east = us.client(region=US)
    key = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    sealed = east.encrypt(KeyId=key, Plaintext=b"still mine")["CiphertextBlob"]
    deleted = json.dumps({"Type": "ReplicaDeleted", "Header": json.dumps({"account": "111122223333", "keyID": key, "region": US})})

    # No certificate, or one from another CA: no TLS session at all.
    for certificate in (None, pki["impostor"]):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            peer_post(us.peer_port, certificate, deleted, ca=pki["ca"])
    # A certificate of the peers' CA that names no configured peer.
    status, answer = peer_post(us.peer_port, pki["stranger"], deleted, ca=pki["ca"])
    assert status == 403 and answer["__type"] == "AccessDeniedException"
    # The real peer, speaking for a Region it does not serve, or sending garbage or too much.
    status, answer = peer_post(us.peer_port, pki["eu"], deleted, ca=pki["ca"])
    assert status == 403 and answer["__type"] == "AccessDeniedException" and "does not serve" in answer["message"]
    status, answer = peer_post(us.peer_port, pki["eu"], b"{\"Type\": 7", ca=pki["ca"])
    assert status == 400 and answer["__type"] == "ValidationException"
    status, answer = peer_post(us.peer_port, pki["eu"], b"x" * (2 << 20), ca=pki["ca"])
    assert status == 413
    status, answer = peer_post(us.peer_port, pki["eu"], deleted, path="/other", ca=pki["ca"])
    assert status == 404

    # Nothing changed, and the service answers on.
    assert east.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"still mine"
    assert east.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert us.process.poll() is None
    log = open(us.log_path).read()
    assert "peer" in log and "BEGIN" not in log  # no certificate or key text logged


def test_peering_settings_are_checked_at_start(pki, tmp_path):
    bad = tmp_path / "peering.yaml"
    bad.write_text("listen: tcp://127.0.0.1:0\nregions: [us-east-1]\ncertificate: %s\nkey: %s\nca: %s\npeers: []\n" % (pki["us"][0], pki["us"][1], pki["ca"]))
    done = subprocess.run([KMSD, "serve", "--dev", "--peering", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "tls://" in done.stdout + done.stderr
    bad.write_text("listen: tls://127.0.0.1:0\nregions: [us-east-1]\ncertificate: %s\nkey: %s\nca: %s\npeers:\n"
                   "  - {name: a.peer.test, endpoint: 'https://127.0.0.1:1', regions: [eu-west-1]}\n"
                   "  - {name: b.peer.test, endpoint: 'https://127.0.0.1:2', regions: [eu-west-1]}\n" % (pki["us"][0], pki["us"][1], pki["ca"]))
    done = subprocess.run([KMSD, "serve", "--dev", "--peering", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "claimed by peers" in done.stdout + done.stderr


def test_a_deployment_of_shared_instances_replicates_from_any_of_them(pki, postgres):
    """Deployment "us" is two `--shared` instances on one PostgreSQL store, each with its own peer
    listener; deployment "eu", one instance on SQLite, lists both as the peer's endpoints. With one
    "us" instance killed, the other replicates on, and "eu" reaches it."""
    from kmsd_instances import Instance, client
    from test_postgres_shared import initialise

    with tempfile.TemporaryDirectory(prefix="kmsd-us-shared-") as us_dir, tempfile.TemporaryDirectory(prefix="kmsd-eu-") as eu_dir:
        url, root, credentials = initialise(postgres, us_dir)
        ports = {"a": free_port(), "b": free_port(), "eu": free_port()}

        def peering(directory, name, port, certificate, other, endpoints, regions):
            path = os.path.join(directory, name + ".peering.yaml")
            with open(path, "w") as f:
                f.write("listen: tls://127.0.0.1:%d\nregions: [%s]\ncertificate: %s\nkey: %s\nca: %s\ninterval: 0.2\n"
                        "peers:\n  - name: %s.peer.test\n    endpoint: '%s'\n    regions: [%s]\n"
                        % (port, US if other == "eu" else EU, certificate[0], certificate[1], pki["ca"], other, endpoints, regions))
            return path

        eu_endpoint = "https://127.0.0.1:%d" % ports["eu"]
        us_endpoints = "https://127.0.0.1:%d,https://127.0.0.1:%d" % (ports["a"], ports["b"])
        instances, eu = [], None
        try:
            for name in "ab":
                args = ["--store", url, *root, "--peering", peering(us_dir, name, ports[name], pki["us"], "eu", eu_endpoint, EU)]
                instances.append(Instance(name, args, us_dir, shared=True))
            eu = Kmsd(eu_dir, extra_args=["--peering", peering(eu_dir, "eu", ports["eu"], pki["eu"], "us", us_endpoints, US)])
            a, b = instances
            east_a, east_b, west = client(a, credentials), client(b, credentials), eu.client(region=EU)

            key = east_a.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
            east_a.replicate_key(KeyId=key, ReplicaRegion=EU)
            eventually(lambda: west.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled")

            a.kill()
            eventually(lambda: east_b.rotate_key_on_demand(KeyId=key))
            from_b = east_b.encrypt(KeyId=key, Plaintext=b"from b")["CiphertextBlob"]
            assert eventually(lambda: west.decrypt(CiphertextBlob=from_b)["Plaintext"]) == b"from b"

            east_b.update_primary_region(KeyId=key, PrimaryRegion=EU)
            eventually(lambda: west.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY")
            eventually(lambda: east_b.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled")
            west.rotate_key_on_demand(KeyId=key)
            from_eu = west.encrypt(KeyId=key, Plaintext=b"from eu")["CiphertextBlob"]
            # Sent to instance a first (gone), then to b.
            assert eventually(lambda: east_b.decrypt(CiphertextBlob=from_eu)["Plaintext"]) == b"from eu"
        finally:
            for instance in instances:
                if instance.process.poll() is None:
                    instance.stop()
            if eu:
                eu.stop()
