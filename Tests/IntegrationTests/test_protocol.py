"""Authentication and malformed input over raw HTTP: the right 4xx __type, and a healthy server after."""
import datetime
import http.client
import json
import socket
import subprocess
import os
import sqlite3
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import UnixHTTPConnection, running_kmsd


def healthy(kmsd):
    status, body, _ = kmsd.raw("ListKeys", {})
    return status == 200 and "Keys" in body


def test_signature_failures(kmsd):
    with pytest.raises(ClientError) as excinfo:
        kmsd.client(secret_key="wrong-secret-wrong-secret").list_keys()
    assert excinfo.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as excinfo:
        kmsd.client(access_key="AKIAUNKNOWNUNKNOWN00").list_keys()
    assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"
    old = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    status, body, _ = kmsd.raw("ListKeys", {}, when=old)
    assert status == 400 and body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("Signature expired: ")
    # A signed header changed after signing.
    headers, payload = kmsd.signed_request("ListKeys", {})
    headers["X-Amz-Target"] = "TrentService.CreateKey"
    connection = http.client.HTTPConnection("127.0.0.1", kmsd.port, timeout=10)
    connection.request("POST", "/", body=payload, headers=headers)
    response = connection.getresponse()
    assert response.status == 400 and json.loads(response.read())["__type"] == "InvalidSignatureException"
    # A tampered body.
    headers, payload = kmsd.signed_request("ListKeys", {"Limit": 1})
    connection.request("POST", "/", body=b'{"Limit": 2}', headers=headers)
    response = connection.getresponse()
    assert json.loads(response.read())["__type"] == "InvalidSignatureException"
    # No signature at all.
    connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "TrentService.ListKeys",
                                                         "Content-Type": "application/x-amz-json-1.1"})
    response = connection.getresponse()
    assert response.status == 403 and json.loads(response.read())["__type"] == "MissingAuthenticationTokenException"
    assert healthy(kmsd)


@pytest.mark.parametrize("body, expected", [
    (b'{"KeyId": "abc"', "SerializationException"),
    (b"[1, 2]", "SerializationException"),
    (b'{"Limit": "ten"}', "SerializationException"),
    (b'{"Limit": true}', "SerializationException"),
    (b'{"Limit": 0}', "ValidationException"),
    (b'{"Surprise": 1}', "SerializationException"),
])
def test_malformed_list_keys(kmsd, body, expected):
    status, response, _ = kmsd.raw("ListKeys", body)
    assert status == 400 and response["__type"] == expected, response
    assert response["message"]
    assert healthy(kmsd)


def test_malformed_blobs_and_members(kmsd):
    key = kmsd.client().create_key()["KeyMetadata"]["KeyId"]
    status, response, _ = kmsd.raw("Decrypt", {"CiphertextBlob": "***not base64***"})
    assert status == 400 and response["__type"] == "SerializationException"
    status, response, _ = kmsd.raw("Encrypt", {"KeyId": key})
    assert status == 400 and response["__type"] == "ValidationException"
    assert "'plaintext'" in response["message"]
    status, response, _ = kmsd.raw("Encrypt", {"KeyId": key, "Plaintext": "aGk=", "EncryptionContext": {"a": 1}})
    assert status == 400 and response["__type"] == "SerializationException"
    status, response, _ = kmsd.raw("Decrypt", {"CiphertextBlob": "AAAA"})
    assert status == 400 and response["__type"] == "InvalidCiphertextException"
    status, response, _ = kmsd.raw("NoSuchOperation", {})
    assert status == 400 and response["__type"] == "UnknownOperationException"
    assert healthy(kmsd)


def test_huge_body_is_refused(kmsd):
    status, response, headers = kmsd.raw("Encrypt", b'{"Plaintext": "' + b"A" * (2 << 20) + b'"}')
    assert status == 413 and response["__type"] == "RequestEntityTooLargeException"
    assert healthy(kmsd)


@pytest.fixture(scope="module")
def impatient_kmsd():
    """A kmsd that drops connections silent for 2 s."""
    with running_kmsd(idle_timeout=2) as server:
        yield server


def test_slow_client_is_dropped_and_others_are_served(impatient_kmsd):
    kmsd = impatient_kmsd
    slow = socket.create_connection(("127.0.0.1", kmsd.port), timeout=10)
    slow.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
    assert healthy(kmsd)  # another connection is served meanwhile
    time.sleep(3)  # past the server's 2 s idle timeout in this fixture
    assert slow.recv(1024) == b""  # the server closed the stuck connection
    slow.close()
    assert healthy(kmsd)


def test_slow_answer_keeps_its_connection(impatient_kmsd):
    """The idle timeout is for silent clients: a request the server takes 3.5 s to answer (its
    store write waits on a lock another process holds) is answered on the same connection."""
    kmsd = impatient_kmsd
    locker = sqlite3.connect(kmsd.store, isolation_level=None, timeout=10, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")  # takes the store's write lock
    release = threading.Timer(3.5, locker.rollback)
    release.start()
    try:
        started = time.monotonic()
        status, body, _ = kmsd.raw("CreateKey", {"Description": "after a wait"})
        waited = time.monotonic() - started
    finally:
        release.join()
        locker.close()
    assert status == 200 and body["KeyMetadata"]["Description"] == "after a wait", body
    assert waited >= 3, waited  # it did wait on the lock, past the idle timeout


def test_unix_socket_endpoint(kmsd):
    assert oct(os.stat(kmsd.socket_path).st_mode & 0o777) == "0o600"
    headers, payload = kmsd.signed_request("CreateKey", {"Description": "over a socket"}, host="localhost")
    connection = UnixHTTPConnection(kmsd.socket_path)
    connection.request("POST", "/", body=payload, headers=headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 200 and body["KeyMetadata"]["Description"] == "over a socket"
    key = body["KeyMetadata"]["KeyId"]
    headers, payload = kmsd.signed_request("GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256"}, host="localhost")
    connection.request("POST", "/", body=payload, headers=headers)
    response = connection.getresponse()
    assert response.status == 200 and len(json.loads(response.read())["Plaintext"]) == 44


def test_aws_cli(kmsd):
    env = kmsd.client_environment(AWS_DEFAULT_REGION="us-east-1")
    def aws(*args):
        done = subprocess.run(["aws", "kms", *args, "--endpoint-url", kmsd.endpoint, "--output", "json"],
                              env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr
    code, out, err = aws("create-key", "--description", "from the aws CLI")
    assert code == 0, err
    key = json.loads(out)["KeyMetadata"]["KeyId"]
    code, out, err = aws("create-alias", "--alias-name", "alias/cli", "--target-key-id", key)
    assert code == 0, err
    code, out, err = aws("generate-data-key", "--key-id", "alias/cli", "--key-spec", "AES_256",
                         "--encryption-context", "purpose=test")
    assert code == 0, err
    assert json.loads(out)["KeyId"].endswith(key)
    code, out, err = aws("describe-key", "--key-id", "alias/missing")
    assert code != 0 and "NotFoundException" in err


def test_sigterm_drains_flushes_audit_and_admin_tools_read_it():
    import tempfile
    from conftest import Kmsd, KMSD
    with tempfile.TemporaryDirectory(prefix="kmsd-term-") as directory:
        server = Kmsd(directory)
        try:
            client = server.client()
            key = client.create_key(Description="audited")["KeyMetadata"]
            for _ in range(25):
                client.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
            with pytest.raises(ClientError):
                server.client(secret_key="not-the-secret-not-the-secret").list_keys()
        finally:
            server.stop()
        assert server.process.returncode == 0
        log = open(server.log_path).read()
        assert "kmsd: stopped" in log
        assert not os.path.exists(server.socket_path)
        store = ["--store", server.store]
        verify = subprocess.run([KMSD, "audit", "verify", *store], capture_output=True, text=True)
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
        tail = subprocess.run([KMSD, "audit", "tail", *store, "--key", key["KeyId"]], capture_output=True, text=True, check=True)
        records = [json.loads(line) for line in tail.stdout.splitlines()]
        # Every data key made in the last moments before SIGTERM is in the trail.
        assert [r["operation"] for r in records].count("GenerateDataKey") == 25
        everything = subprocess.run([KMSD, "audit", "tail", *store, "--limit", "1000"], capture_output=True, text=True, check=True)
        refused = [json.loads(l) for l in everything.stdout.splitlines() if '"InvalidSignatureException"' in l]
        assert refused and refused[0]["principal"] == "unauthenticated"
        # The secret never reaches the log or the store files.
        assert server.secret_key not in log
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), "rb") as f:
                assert server.secret_key.encode() not in f.read(), name
        # Admin: accounts and access keys, with the server stopped.
        created = subprocess.run([KMSD, "admin", "create-access-key", *store, "--account", "111122223333", "--user", "ci"],
                                 capture_output=True, text=True, check=True).stdout
        assert "arn:aws:iam::111122223333:user/ci" in created
        listed = subprocess.run([KMSD, "admin", "list-access-keys", *store], capture_output=True, text=True, check=True).stdout
        assert len(listed.splitlines()) == 2 and "secret" not in listed.lower()
        new_id = created.split("access key id: ")[1].split()[0]
        subprocess.run([KMSD, "admin", "revoke-access-key", *store, new_id], capture_output=True, text=True, check=True)
        listed = subprocess.run([KMSD, "admin", "list-access-keys", *store], capture_output=True, text=True, check=True).stdout
        assert new_id not in listed


def test_an_operation_header_outside_the_signature_is_refused(kmsd):
    """A request signed over host and date alone (X-Amz-Target added after signing) proves
    nothing about its operation: refused as IncompleteSignatureException, and the DisableKey it
    would have become did not happen."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    from conftest import REGION
    key = kmsd.client().create_key(Description="target")["KeyMetadata"]["KeyId"]
    body = json.dumps({"KeyId": key}).encode()
    request = botocore.awsrequest.AWSRequest(method="POST", url="http://127.0.0.1:%d/" % kmsd.port,
                                             headers={"Content-Type": "application/x-amz-json-1.1"}, data=body)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(kmsd.access_key, kmsd.secret_key), "kms", REGION).add_auth(request)
    headers = dict(request.headers.items())
    assert "x-amz-target" not in headers["Authorization"].lower()
    headers["X-Amz-Target"] = "TrentService.DisableKey"
    connection = http.client.HTTPConnection("127.0.0.1", kmsd.port, timeout=10)
    connection.request("POST", "/", body=body, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 400 and answer["__type"] == "IncompleteSignatureException", answer
    assert "x-amz-target" in answer["message"]
    assert kmsd.client().describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"


def test_refused_requests_cannot_fill_the_store(own_kmsd):
    """300 requests with 20 KB of claimed credential and a 5 KB operation name, refused before
    any key is used: the store grows by little (fields capped, records rate limited), and kmsd
    answers every one and stays healthy."""
    def store_bytes():
        return sum(os.path.getsize(os.path.join(own_kmsd.directory, n)) for n in os.listdir(own_kmsd.directory)
                   if n.startswith("keys.sqlite"))
    own_kmsd.client().list_keys()
    before = store_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", own_kmsd.port, timeout=10)
    authorization = ("AWS4-HMAC-SHA256 Credential=" + "A" * 20000 + "/20260101/us-east-1/kms/aws4_request, "
                     "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    for _ in range(300):
        connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "TrentService." + "B" * 5000,
                                                             "Content-Type": "application/x-amz-json-1.1",
                                                             "X-Amz-Date": "20260101T000000Z", "Authorization": authorization})
        response = connection.getresponse()
        response.read()
        assert response.status in (400, 403, 404)
    own_kmsd.client().list_keys()  # flushes the audit buffer with a write of its own
    time.sleep(1.5)
    grown = store_bytes() - before
    assert grown < 1 << 20, "the store grew by %d bytes" % grown
    assert healthy(own_kmsd)


def closed_within(sock, seconds):
    """Seconds until the server closed `sock` (EOF or reset), or None if it stayed open."""
    sock.settimeout(0.2)
    start = time.time()
    while time.time() - start < seconds:
        try:
            if sock.recv(1024) == b"":
                return time.time() - start
        except socket.timeout:
            pass
        except OSError:
            return time.time() - start
    return None


def test_slow_and_numerous_clients_cannot_hold_kmsd():
    """A client trickling a byte every half second (which keeps the idle timeout away) is cut off
    at the request deadline; past the connection limit a new connection is closed at once; the
    ones within the limit, and a client after the others left, are served."""
    with running_kmsd(extra_args=["--request-timeout", "2", "--max-connections", "20"]) as server:
        trickler = socket.create_connection(("127.0.0.1", server.port))
        trickler.send(b"POST / HTTP/1.1\r\n")
        start = time.time()
        closed = None
        while closed is None and time.time() - start < 10:
            try:
                trickler.send(b"X")
            except OSError:
                closed = time.time() - start
                break
            closed = closed_within(trickler, 0.5)
            if closed is not None:
                closed = time.time() - start
        assert closed is not None and closed < 6, "a trickling client held its connection for %s s" % closed
        trickler.close()
        # The deadline is per request, not per connection: a busy keep-alive connection lives on
        # past it, and its next request, trickled after a quiet moment, gets a deadline of its own.
        busy = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        start, served = time.time(), 0
        while time.time() - start < 5:
            status, body, _ = server.raw("ListKeys", {}, connection=busy)
            assert status == 200, body
            served += 1
        time.sleep(1)
        busy.sock.send(b"POST / HTTP/1.1\r\n")
        started = time.time()
        late = None
        while late is None and time.time() - started < 10:
            try:
                busy.sock.send(b"X")
            except OSError:
                late = time.time() - started
                break
            late = closed_within(busy.sock, 0.5)
            if late is not None:
                late = time.time() - started
        assert served > 10 and late is not None and 1.5 < late < 6, (served, late)
        busy.close()
        held = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=5) for _ in range(20)]
        for connection in held:
            connection.connect()
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", server.port))
        assert closed_within(extra, 3) is not None, "a connection past the limit stayed open"
        status, body, _ = server.raw("ListKeys", {}, connection=held[0])
        assert status == 200, body
        for connection in held:
            connection.close()
        time.sleep(0.3)
        assert server.client().list_keys()["Keys"] == []
        assert healthy(server)


def test_host_name_refuses_requests_signed_for_another_host():
    """With --host-name, a request signed for another host (the same credentials replayed from
    somewhere they are also valid) is refused with the reason; one signed for the named host
    with any port, is served."""
    with running_kmsd(extra_args=["--host-name", "kms.example.internal"]) as server:
        status, body, _ = server.raw("ListKeys", {})  # signed for 127.0.0.1:PORT
        assert status == 400 and body["__type"] == "InvalidSignatureException"
        assert "signed for host '127.0.0.1'" in body["message"] and "kms.example.internal" in body["message"]
        for host in ("kms.example.internal", "kms.example.internal:8443"):
            headers, payload = server.signed_request("ListKeys", {}, host=host)
            headers["Host"] = host  # what a client of that host name sends (botocore signs it from the URL)
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request("POST", "/", body=payload, headers=headers)
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()


def test_a_key_moved_to_another_account_in_the_store_stops_kmsd(own_kmsd):
    """One SQL UPDATE of a key's account (no root key needed) used to hand the key to another
    account; now kmsd refuses to start and names the record."""
    from conftest import KMSD
    key = own_kmsd.client().create_key(Description="stays home")["KeyMetadata"]["KeyId"]
    own_kmsd.stop()
    with sqlite3.connect(own_kmsd.store) as db:
        db.execute("UPDATE keys SET record = replace(record, '111122223333', '444455556666'), account = '444455556666'")
    result = subprocess.run([KMSD, "serve", "--store", own_kmsd.store, "--listen", "tcp://127.0.0.1:0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "keys/%s was changed outside kmsd" % key in result.stdout + result.stderr


def test_a_revoked_access_key_put_back_in_the_store_stops_kmsd(own_kmsd):
    """Its row verified once (its MAC is the root key's), so the MACs alone would take it back;
    the state digest does not: the set of records is not the one kmsd last wrote."""
    from conftest import KMSD
    created = subprocess.run([KMSD, "admin", "create-access-key", "--store", own_kmsd.store, "--account", "111122223333"],
                             capture_output=True, text=True, check=True).stdout
    key_id = created.split("access key id: ")[1].split()[0]
    secret = created.split("secret access key: ")[1].split()[0]
    assert own_kmsd.client(key_id, secret).list_keys()["Keys"] == []
    with sqlite3.connect(own_kmsd.store) as db:  # a copy of the row, as an old backup would hold it
        row = db.execute("SELECT access_key_id, account, record, sealed_secret, mac FROM access_keys WHERE access_key_id = ?",
                         (key_id,)).fetchone()
    subprocess.run([KMSD, "admin", "revoke-access-key", "--store", own_kmsd.store, key_id], capture_output=True, text=True, check=True)
    own_kmsd.stop()
    with sqlite3.connect(own_kmsd.store) as db:
        db.execute("INSERT INTO access_keys(access_key_id, account, record, sealed_secret, mac) VALUES(?, ?, ?, ?, ?)", row)
    result = subprocess.run([KMSD, "serve", "--store", own_kmsd.store, "--listen", "tcp://127.0.0.1:0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "not the set kmsd last wrote" in result.stdout + result.stderr


def test_audit_tail_follows_a_running_kmsd(own_kmsd):
    """`kmsd audit tail` reads the trail beside a running kmsd (no need to stop it), takes an
    alias for --key, prints text, and with --follow prints records as kmsd writes them."""
    from conftest import KMSD
    client = own_kmsd.client()
    key = client.create_key(Description="followed")["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName="alias/followed", TargetKeyId=key)
    other = client.create_key(Description="not followed")["KeyMetadata"]["KeyId"]
    client.generate_data_key(KeyId=key, KeySpec="AES_256")
    client.generate_data_key(KeyId=other, KeySpec="AES_256")
    time.sleep(0.5)  # the audit buffer is written every 100 ms
    tail = subprocess.run([KMSD, "audit", "tail", "--store", own_kmsd.store, "--key", "alias/followed"],
                          capture_output=True, text=True, timeout=30)
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [r["operation"] for r in records if r["operation"] == "GenerateDataKey"] == ["GenerateDataKey"]
    assert all(r.get("keyARN", "").endswith(key) for r in records)
    follower = subprocess.Popen([KMSD, "audit", "tail", "--store", own_kmsd.store, "--key", key, "--follow", "--format", "text",
                                 "--limit", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        client.encrypt(KeyId=key, Plaintext=b"followed", EncryptionContext={"purpose": "test"})
        deadline = time.time() + 10
        line = ""
        while time.time() < deadline and "Encrypt" not in line:
            line = follower.stdout.readline()
        assert "Encrypt" in line and key in line and "context purpose=test" in line and "  ok" in line, line
    finally:
        follower.kill()
        follower.wait()
