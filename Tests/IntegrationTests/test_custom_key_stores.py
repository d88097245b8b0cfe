"""Custom key stores against real kmsd processes: AWS_CLOUDHSM stores on a SoftHSM2 token (made
here with softhsm2-util), and EXTERNAL_KEY_STORE stores through `kmsd xks-proxy` — itself in
front of another token — over TLS with SigV4 on both sides. Driven with boto3 and the aws CLI."""
import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from conftest import KMSD, REGION, Kmsd, stop_process

MODULE = next((p for p in ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
               if os.path.exists(p)), None)
# SoftHSM2 is installed by scripts/setup: without it these tests fail, they do not skip.
assert MODULE is not None and shutil.which("softhsm2-util") is not None, "SoftHSM2 is missing: run scripts/setup"
CLUSTER = "cluster-abcdefghijk"
PASSWORD = "kmsuser-password"
XKS_PATH = "/example/kms/xks/v1"
XKS_ACCESS_KEY = "ABCDEFGHIJKLMNOPQRST234567"
XKS_SECRET = base64.b64encode(secrets.token_bytes(33)).decode()


def error_code(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def store_entry(kms, store_id):
    return kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]


def settled(kms, store_id, deadline=20):
    """The store's entry once it is no longer CONNECTING (kmsd reconnects in the background)."""
    end = time.time() + deadline
    while True:
        entry = store_entry(kms, store_id)
        if entry["ConnectionState"] != "CONNECTING" or time.time() > end:
            return entry
        time.sleep(0.05)


def token_objects(directory):
    return sum(len([f for f in files if f.endswith(".object")]) for _, _, files in os.walk(os.path.join(directory, "tokens")))


class Tokens:
    """A SoftHSM2 token directory of its own, with tokens initialized by softhsm2-util."""

    def __init__(self, directory):
        os.makedirs(os.path.join(directory, "tokens"))
        self.conf = os.path.join(directory, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n" % directory)
        self.env = dict(os.environ, SOFTHSM2_CONF=self.conf)

    def init(self, label, pin):
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "so-pin-1234", "--pin", pin],
                       check=True, capture_output=True, env=self.env)

    def token_arguments(self, directory, label, pin):
        pin_file = os.path.join(directory, "%s.pin" % label)
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, pin.encode())
        os.close(fd)
        return ["--pkcs11-module", MODULE, "--token-label", label, "--pin-file", pin_file]


class XksProxy:
    """`kmsd xks-proxy serve` on loopback TLS with a certificate for localhost."""

    def __init__(self, directory, tokens, token_args):
        self.certificate = os.path.join(directory, "proxy.pem")
        self.key = os.path.join(directory, "proxy.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2",
                        "-keyout", self.key, "-out", self.certificate], check=True, capture_output=True)
        credentials = os.path.join(directory, "xks.credentials")
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, ("%s %s\n" % (XKS_ACCESS_KEY, XKS_SECRET)).encode())
        os.close(fd)
        self.args = [KMSD, "xks-proxy", "serve", *token_args, "--listen", "tls://127.0.0.1:0", "--tls-certificate", self.certificate,
                     "--tls-key", self.key, "--uri-path", XKS_PATH, "--credentials-file", credentials]
        self.log_path = os.path.join(directory, "xks-proxy.log")
        self.env = tokens.env
        self.start()

    def start(self):
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 30
        while "ready" not in open(self.log_path).read():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError("xks-proxy did not start: " + open(self.log_path).read())
            time.sleep(0.05)
        self.port = int(re.search(r"serving https://[^:]+:(\d+)", open(self.log_path).read()).group(1))
        self.endpoint = "https://localhost:%d" % self.port
        # A restart comes back at the same address, where the store expects its proxy.
        self.args[self.args.index("--listen") + 1] = "tls://127.0.0.1:%d" % self.port

    def stop(self):
        stop_process(self.process)
        self.log.close()

    def request(self, path, body, method="POST", sign=True, secret=None):
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            request = botocore.awsrequest.AWSRequest(method=method, url="https://localhost:%d%s" % (self.port, path), headers=headers, data=data)
            botocore.auth.SigV4Auth(botocore.credentials.Credentials(XKS_ACCESS_KEY, secret or XKS_SECRET), "kms-xks-proxy", REGION).add_auth(request)
            headers = dict(request.headers.items())
        context = ssl.create_default_context(cafile=self.certificate)
        connection = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=10)
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def world():
    """Two tokens (one for kmsd's CloudHSM-style store, one behind the XKS proxy), the proxy, and
    a kmsd that knows the PKCS#11 module and trusts the proxy's certificate."""
    with tempfile.TemporaryDirectory(prefix="kmsd-cks-") as directory:
        tokens = Tokens(directory)
        tokens.init(CLUSTER, PASSWORD)
        tokens.init("cluster-zzzzzzzzzzzz", "another-password")
        tokens.init("xks-token", "xks-pin-1234")
        proxy_token = tokens.token_arguments(directory, "xks-token", "xks-pin-1234")
        for label in ["xks-key-1", "xks-key-2"]:
            made = subprocess.run([KMSD, "xks-proxy", "create-key", *proxy_token, label], capture_output=True, text=True, env=tokens.env)
            assert made.returncode == 0, made.stderr
        proxy = XksProxy(directory, tokens, proxy_token)
        previous = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = tokens.conf
        server = None
        try:
            kmsd_dir = os.path.join(directory, "kmsd")
            os.makedirs(kmsd_dir)
            server = Kmsd(kmsd_dir, extra_args=["--pkcs11-module", MODULE, "--xks-ca-bundle", proxy.certificate])
            yield server, proxy, tokens, directory, proxy_token
        finally:
            if server:
                server.stop()
            proxy.stop()
            if previous is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            else:
                os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="module")
def hsm_store(world):
    server, *_ = world
    kms = server.client()
    store = kms.create_custom_key_store(CustomKeyStoreName="hsm", CloudHsmClusterId=CLUSTER, TrustAnchorCertificate="-----BEGIN CERTIFICATE-----",
                                        KeyStorePassword=PASSWORD)["CustomKeyStoreId"]
    assert store.startswith("cks-") and store_entry(kms, store)["ConnectionState"] == "DISCONNECTED"
    kms.connect_custom_key_store(CustomKeyStoreId=store)
    return store


def test_a_cloudhsm_style_store_makes_keys_in_the_token_and_seals_through_it(world, hsm_store):
    server, proxy, tokens, directory, _ = world
    kms = server.client()
    entry = store_entry(kms, hsm_store)
    assert entry["ConnectionState"] == "CONNECTED" and entry["CloudHsmClusterId"] == CLUSTER
    assert entry["CustomKeyStoreType"] == "AWS_CLOUDHSM" and "ConnectionErrorCode" not in entry
    key = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store)["KeyMetadata"]
    assert key["Origin"] == "AWS_CLOUDHSM" and key["CustomKeyStoreId"] == hsm_store and key["CloudHsmClusterId"] == CLUSTER
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"sealed by the token", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"sealed by the token"
    assert error_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "c"})) == "InvalidCiphertextException"
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    assert error_code(lambda: kms.decrypt(CiphertextBlob=tampered, EncryptionContext={"a": "b"})) == "InvalidCiphertextException"
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    # The key is in the token, under the KMS key's ID: another process that opens the token finds it there.
    again = subprocess.run([KMSD, "xks-proxy", "create-key", *tokens.token_arguments(directory, CLUSTER, PASSWORD), key["KeyId"]],
                           capture_output=True, text=True, env=tokens.env)
    assert again.returncode != 0 and "already holds a key labelled" in again.stderr
    # What AWS refuses for keys in a custom key store.
    assert error_code(lambda: kms.enable_key_rotation(KeyId=key["KeyId"])) == "UnsupportedOperationException"
    assert error_code(lambda: kms.rotate_key_on_demand(KeyId=key["KeyId"])) == "UnsupportedOperationException"
    assert error_code(lambda: kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256")) == "UnsupportedOperationException"
    assert error_code(lambda: kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store, KeySpec="RSA_2048")) == "UnsupportedOperationException"
    assert error_code(lambda: kms.create_key(Origin="AWS_CLOUDHSM")) == "ValidationException"
    assert error_code(lambda: kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId="cks-1234567890abcdef0")) == "CustomKeyStoreNotFoundException"
    assert len(kms.generate_random(NumberOfBytes=48, CustomKeyStoreId=hsm_store)["Plaintext"]) == 48


def test_a_disconnected_store_makes_its_keys_unavailable_until_it_reconnects(world, hsm_store):
    server, *_ = world
    kms = server.client()
    key = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store)["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"before")["CiphertextBlob"]
    kms.disconnect_custom_key_store(CustomKeyStoreId=hsm_store)
    try:
        assert store_entry(kms, hsm_store)["ConnectionState"] == "DISCONNECTED"
        assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Unavailable"
        assert error_code(lambda: kms.encrypt(KeyId=key, Plaintext=b"x")) == "KMSInvalidStateException"
        assert error_code(lambda: kms.decrypt(CiphertextBlob=blob)) == "KMSInvalidStateException"
        assert error_code(lambda: kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store)) == "CustomKeyStoreInvalidStateException"
        assert error_code(lambda: kms.disconnect_custom_key_store(CustomKeyStoreId=hsm_store)) == "CustomKeyStoreInvalidStateException"
        # A store that still holds keys is not deleted.
        assert error_code(lambda: kms.delete_custom_key_store(CustomKeyStoreId=hsm_store)) == "CustomKeyStoreHasCMKsException"
    finally:
        kms.connect_custom_key_store(CustomKeyStoreId=hsm_store)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
    assert error_code(lambda: kms.delete_custom_key_store(CustomKeyStoreId=hsm_store)) == "CustomKeyStoreInvalidStateException"
    assert error_code(lambda: kms.update_custom_key_store(CustomKeyStoreId=hsm_store, KeyStorePassword="new-password")) == "CustomKeyStoreInvalidStateException"


def test_connection_failures_are_states_with_aws_error_codes(world):
    server, *_ = world
    kms = server.client()
    wrong = kms.create_custom_key_store(CustomKeyStoreName="wrong-pin", CloudHsmClusterId="cluster-zzzzzzzzzzzz",
                                        TrustAnchorCertificate="anchor", KeyStorePassword="not-the-password")["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=wrong)
    entry = store_entry(kms, wrong)
    assert entry["ConnectionState"] == "FAILED" and entry["ConnectionErrorCode"] == "INVALID_CREDENTIALS"
    assert error_code(lambda: kms.connect_custom_key_store(CustomKeyStoreId=wrong)) == "CustomKeyStoreInvalidStateException"
    kms.disconnect_custom_key_store(CustomKeyStoreId=wrong)
    kms.update_custom_key_store(CustomKeyStoreId=wrong, KeyStorePassword="another-password", NewCustomKeyStoreName="right-pin")
    kms.connect_custom_key_store(CustomKeyStoreId=wrong)
    assert store_entry(kms, wrong)["ConnectionState"] == "CONNECTED"
    assert store_entry(kms, wrong)["CustomKeyStoreName"] == "right-pin"
    kms.disconnect_custom_key_store(CustomKeyStoreId=wrong)
    kms.delete_custom_key_store(CustomKeyStoreId=wrong)
    assert error_code(lambda: store_entry(kms, wrong)) == "CustomKeyStoreNotFoundException"

    missing = kms.create_custom_key_store(CustomKeyStoreName="no-such-token", CloudHsmClusterId="cluster-nosuchtokenxx",
                                          TrustAnchorCertificate="anchor", KeyStorePassword="whatever1")["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=missing)
    assert store_entry(kms, missing)["ConnectionErrorCode"] == "CLUSTER_NOT_FOUND"


def test_store_settings_are_validated_and_unique(world, hsm_store):
    server, *_ = world
    kms = server.client()
    assert error_code(lambda: kms.create_custom_key_store(CustomKeyStoreName="hsm", CloudHsmClusterId="cluster-bbbbbbbbbbbb",
                                                          TrustAnchorCertificate="a", KeyStorePassword="1234567")) == "CustomKeyStoreNameInUseException"
    assert error_code(lambda: kms.create_custom_key_store(CustomKeyStoreName="twin", CloudHsmClusterId=CLUSTER,
                                                          TrustAnchorCertificate="a", KeyStorePassword="1234567")) == "CloudHsmClusterInUseException"
    # What botocore would refuse before sending, sent raw: kmsd refuses it too.
    for request in [
        {"CustomKeyStoreName": "short", "CloudHsmClusterId": "cluster-bbbbbbbbbbbb", "TrustAnchorCertificate": "a", "KeyStorePassword": "123"},
        {"CustomKeyStoreName": "bad-id", "CloudHsmClusterId": "cluster-1", "TrustAnchorCertificate": "a", "KeyStorePassword": "1234567"},
        {"CustomKeyStoreName": "no-anchor", "CloudHsmClusterId": "cluster-bbbbbbbbbbbb", "KeyStorePassword": "1234567"},
        {"CustomKeyStoreName": "plain-http", "CustomKeyStoreType": "EXTERNAL_KEY_STORE", "XksProxyUriEndpoint": "http://localhost:1",
         "XksProxyUriPath": XKS_PATH, "XksProxyConnectivity": "PUBLIC_ENDPOINT",
         "XksProxyAuthenticationCredential": {"AccessKeyId": XKS_ACCESS_KEY, "RawSecretAccessKey": XKS_SECRET}},
        {"CustomKeyStoreName": "bad-path", "CustomKeyStoreType": "EXTERNAL_KEY_STORE", "XksProxyUriEndpoint": "https://localhost:1",
         "XksProxyUriPath": "/kms/xks/v1/../x", "XksProxyConnectivity": "PUBLIC_ENDPOINT",
         "XksProxyAuthenticationCredential": {"AccessKeyId": XKS_ACCESS_KEY, "RawSecretAccessKey": XKS_SECRET}},
        {"CustomKeyStoreName": "short-secret", "CustomKeyStoreType": "EXTERNAL_KEY_STORE", "XksProxyUriEndpoint": "https://localhost:1",
         "XksProxyUriPath": XKS_PATH, "XksProxyConnectivity": "PUBLIC_ENDPOINT",
         "XksProxyAuthenticationCredential": {"AccessKeyId": XKS_ACCESS_KEY, "RawSecretAccessKey": "short"}},
    ]:
        status, body, _ = server.raw("CreateCustomKeyStore", request)
        assert status == 400 and body["__type"] == "ValidationException", (request, body)
    assert "short" not in json.dumps(kms.describe_custom_key_stores()["CustomKeyStores"], default=str)


def test_the_store_holds_no_password_and_reconnects_after_a_restart(world, hsm_store):
    server, *_ = world
    kms = server.client()
    key = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store)["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"survives a restart")["CiphertextBlob"]
    # A store whose connection failed is not one to reconnect at start.
    failing = kms.create_custom_key_store(CustomKeyStoreName="fails-at-restart", CloudHsmClusterId="cluster-nosuchtokenyy",
                                          TrustAnchorCertificate="anchor", KeyStorePassword="whatever1")["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=failing)
    assert store_entry(kms, failing)["ConnectionState"] == "FAILED"
    stop_process(server.process)
    server.log.close()
    with open(server.store, "rb") as f:
        contents = f.read()
    assert PASSWORD.encode() not in contents and XKS_SECRET.encode() not in contents
    server.log = open(server.log_path, "a")
    server.process = subprocess.Popen([KMSD, "serve", "--store", server.store, "--listen", "tcp://127.0.0.1:%d" % server.port,
                                       "--listen", "unix://%s?mode=0600" % server.socket_path,
                                       "--pkcs11-module", MODULE, "--xks-ca-bundle", world[1].certificate],
                                      stdout=server.log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while open(server.log_path).read().count("kmsd: ready") < 2:
        assert server.process.poll() is None and time.time() < deadline, open(server.log_path).read()
        time.sleep(0.05)
    kms = server.client()
    assert settled(kms, hsm_store)["ConnectionState"] == "CONNECTED"
    assert store_entry(kms, failing)["ConnectionState"] == "DISCONNECTED"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"survives a restart"


@pytest.fixture(scope="module")
def xks_store(world):
    server, proxy, *_ = world
    kms = server.client()
    store = kms.create_custom_key_store(
        CustomKeyStoreName="xks", CustomKeyStoreType="EXTERNAL_KEY_STORE", XksProxyUriEndpoint=proxy.endpoint,
        XksProxyUriPath=XKS_PATH, XksProxyConnectivity="PUBLIC_ENDPOINT",
        XksProxyAuthenticationCredential={"AccessKeyId": XKS_ACCESS_KEY, "RawSecretAccessKey": XKS_SECRET})["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=store)
    return store


def test_an_external_key_store_seals_through_the_xks_proxy(world, xks_store):
    server, proxy, *_ = world
    kms = server.client()
    entry = store_entry(kms, xks_store)
    assert entry["ConnectionState"] == "CONNECTED", entry
    assert entry["XksProxyConfiguration"] == {"Connectivity": "PUBLIC_ENDPOINT", "AccessKeyId": XKS_ACCESS_KEY,
                                              "UriEndpoint": proxy.endpoint, "UriPath": XKS_PATH}
    key = kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=xks_store, XksKeyId="xks-key-1")["KeyMetadata"]
    assert key["XksKeyConfiguration"] == {"Id": "xks-key-1"} and key["Origin"] == "EXTERNAL_KEY_STORE"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"held outside", EncryptionContext={"k": "v"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"] == b"held outside"
    assert error_code(lambda: kms.decrypt(CiphertextBlob=blob)) == "InvalidCiphertextException"
    # Double encryption: what the proxy's key opens is kmsd's own ciphertext, not the plaintext.
    plain_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"held outside")["CiphertextBlob"]
    n = plain_blob[1]
    aad = b"kmsd blob 1" + plain_blob[:6 + n] + b"\0\0\0\0"
    sealed = plain_blob[18 + n:]
    caller = {"awsPrincipalArn": "arn:aws:iam::111122223333:root", "kmsOperation": "Decrypt", "kmsRequestId": "r",
              "kmsKeyArn": key["Arn"]}
    status, opened = proxy.request(XKS_PATH + "/keys/xks-key-1/decrypt", {
        "requestMetadata": caller, "encryptionAlgorithm": "AES_GCM", "initializationVector": base64.b64encode(plain_blob[6 + n:18 + n]).decode(),
        "ciphertext": base64.b64encode(sealed[:-16]).decode(), "authenticationTag": base64.b64encode(sealed[-16:]).decode(),
        "additionalAuthenticatedData": base64.b64encode(aad).decode()})
    assert status == 200, opened
    inner = base64.b64decode(opened["plaintext"])
    assert len(inner) == len(b"held outside") + 28 and b"held outside" not in inner
    assert error_code(lambda: kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=xks_store, XksKeyId="xks-key-1")) == "XksKeyAlreadyInUseException"
    assert error_code(lambda: kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=xks_store, XksKeyId="no-such-key")) == "XksKeyNotFoundException"
    assert error_code(lambda: kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=xks_store)) == "ValidationException"
    # The proxy down: the key is unusable (KMSInvalidStateException), and usable again when it is back.
    proxy.stop()
    try:
        assert error_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})) == "KMSInvalidStateException"
    finally:
        proxy.start()
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"] == b"held outside"
    other = kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=xks_store, XksKeyId="xks-key-2")["KeyMetadata"]["KeyId"]
    # Each external key seals its own: a blob of one does not open under the other's key.
    other_blob = kms.encrypt(KeyId=other, Plaintext=b"second")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=other_blob)["Plaintext"] == b"second"


def test_a_wrong_proxy_credential_or_path_fails_with_aws_connection_codes(world):
    server, proxy, *_ = world
    kms = server.client()

    def connect(name, path, secret):
        store = kms.create_custom_key_store(
            CustomKeyStoreName=name, CustomKeyStoreType="EXTERNAL_KEY_STORE", XksProxyUriEndpoint=proxy.endpoint,
            XksProxyUriPath=path, XksProxyConnectivity="PUBLIC_ENDPOINT",
            XksProxyAuthenticationCredential={"AccessKeyId": XKS_ACCESS_KEY, "RawSecretAccessKey": secret})["CustomKeyStoreId"]
        kms.connect_custom_key_store(CustomKeyStoreId=store)
        entry = store_entry(kms, store)
        assert entry["ConnectionState"] == "FAILED"
        return entry["ConnectionErrorCode"]

    assert connect("xks-wrong-secret", "/other/kms/xks/v1", base64.b64encode(secrets.token_bytes(33)).decode()) == "XKS_PROXY_ACCESS_DENIED"
    assert connect("xks-wrong-path", "/another/kms/xks/v1", XKS_SECRET) == "XKS_PROXY_INVALID_CONFIGURATION"


def test_the_proxy_authenticates_every_request_and_answers_the_spec(world):
    _, proxy, *_ = world
    metadata = {"requestMetadata": {"kmsRequestId": "r-1", "kmsOperation": "KmsHealthCheck"}}
    status, body = proxy.request(XKS_PATH + "/health", metadata)
    assert status == 200 and body["ekmFleetDetails"][0]["healthStatus"] == "ACTIVE"
    assert proxy.request(XKS_PATH + "/health", metadata, sign=False) == (401, {"errorName": "AuthenticationFailedException",
                                                                              "errorMessage": "the request's signature does not verify"})
    assert proxy.request(XKS_PATH + "/health", metadata, secret="x" * 44)[0] == 401
    assert proxy.request("/elsewhere/kms/xks/v1/health", metadata)[1]["errorName"] == "InvalidUriPathException"
    assert proxy.request("/elsewhere/kms/xks/v1/health", metadata, sign=False)[1]["errorName"] == "AuthenticationFailedException"
    assert proxy.request(XKS_PATH + "/health", metadata, method="GET")[0] == 405
    caller = {"awsPrincipalArn": "arn:aws:iam::111122223333:root", "kmsOperation": "Encrypt", "kmsRequestId": "r-2",
              "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/x"}
    status, sealed = proxy.request(XKS_PATH + "/keys/xks-key-1/encrypt", {
        "requestMetadata": caller, "plaintext": base64.b64encode(b"spec").decode(), "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": base64.b64encode(b"aad").decode()})
    assert status == 200 and len(base64.b64decode(sealed["initializationVector"])) == 12
    decrypt = {"requestMetadata": caller, "encryptionAlgorithm": "AES_GCM", "ciphertext": sealed["ciphertext"],
               "initializationVector": sealed["initializationVector"], "authenticationTag": sealed["authenticationTag"],
               "additionalAuthenticatedData": base64.b64encode(b"aad").decode()}
    assert proxy.request(XKS_PATH + "/keys/xks-key-1/decrypt", decrypt)[1] == {"plaintext": base64.b64encode(b"spec").decode()}
    decrypt["additionalAuthenticatedData"] = base64.b64encode(b"aae").decode()
    assert proxy.request(XKS_PATH + "/keys/xks-key-1/decrypt", decrypt)[1]["errorName"] == "InvalidCiphertextException"
    assert proxy.request(XKS_PATH + "/keys/nope/metadata", {"requestMetadata": caller})[1]["errorName"] == "KeyNotFoundException"
    wrong_type = {"requestMetadata": caller, "plaintext": base64.b64encode(b"spec").decode(), "encryptionAlgorithm": "AES_GCM",
                  "additionalAuthenticatedData": 7}
    assert proxy.request(XKS_PATH + "/keys/xks-key-1/encrypt", wrong_type) == (400, {"errorName": "ValidationException",
                                                                                    "errorMessage": "additionalAuthenticatedData must be a base64 string"})
    assert proxy.request(XKS_PATH + "/keys/xks-key-1/metadata", {"requestMetadata": caller})[1] == {
        "keySpec": "AES_256", "keyUsage": ["ENCRYPT", "DECRYPT"], "keyStatus": "ENABLED"}


def test_the_aws_cli_drives_every_custom_key_store_operation(world, hsm_store, tmp_path):
    server, *_ = world
    env = dict(os.environ, AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key, AWS_DEFAULT_REGION=REGION)

    def aws(*arguments):
        out = subprocess.run(["aws", "--endpoint-url", server.endpoint, "kms", *arguments], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    listed = aws("describe-custom-key-stores", "--custom-key-store-id", hsm_store)
    assert listed["CustomKeyStores"][0]["CustomKeyStoreId"] == hsm_store
    store = aws("create-custom-key-store", "--custom-key-store-name", "cli-made", "--cloud-hsm-cluster-id", "cluster-zzzzzzzzzzzz",
                "--trust-anchor-certificate", "anchor", "--key-store-password", "another-password")["CustomKeyStoreId"]
    aws("connect-custom-key-store", "--custom-key-store-id", store)
    assert aws("describe-custom-key-stores", "--custom-key-store-name", "cli-made")["CustomKeyStores"][0]["ConnectionState"] == "CONNECTED"
    key = aws("create-key", "--origin", "AWS_CLOUDHSM", "--custom-key-store-id", store)["KeyMetadata"]
    assert key["CustomKeyStoreId"] == store
    random = aws("generate-random", "--number-of-bytes", "16", "--custom-key-store-id", store)
    assert len(base64.b64decode(random["Plaintext"])) == 16
    aws("schedule-key-deletion", "--key-id", key["KeyId"], "--pending-window-in-days", "7")
    aws("disconnect-custom-key-store", "--custom-key-store-id", store)
    aws("update-custom-key-store", "--custom-key-store-id", store, "--new-custom-key-store-name", "cli-renamed")
    assert aws("describe-custom-key-stores", "--custom-key-store-id", store)["CustomKeyStores"][0]["CustomKeyStoreName"] == "cli-renamed"


def test_without_a_pkcs11_module_cloudhsm_stores_are_unsupported(kms):
    assert error_code(lambda: kms.create_custom_key_store(CustomKeyStoreName="x", CloudHsmClusterId="cluster-abcdefghijk",
                                                          TrustAnchorCertificate="a", KeyStorePassword="1234567")) == "UnsupportedOperationException"
    assert kms.describe_custom_key_stores()["CustomKeyStores"] == []


def test_a_seed_declares_custom_key_stores_and_connects_them(world, tmp_path):
    _, proxy, tokens, *_ = world
    seed = tmp_path / "seed.yaml"

    def write(cluster):
        seed.write_text("""accounts:
  - id: "111122223333"
    customKeyStores:
      - name: seeded-hsm
        type: AWS_CLOUDHSM
        cloudHsmClusterId: %s
        trustAnchorCertificate: anchor
        keyStorePassword: %s
        connect: true
      - name: seeded-xks
        type: EXTERNAL_KEY_STORE
        xksProxyUriEndpoint: %s
        xksProxyUriPath: %s
        xksProxyAccessKeyId: %s
        xksProxySecretAccessKey: "%s"
""" % (cluster, PASSWORD, proxy.endpoint, XKS_PATH, XKS_ACCESS_KEY, XKS_SECRET))

    write(CLUSTER)
    directory = tmp_path / "kmsd"
    directory.mkdir()
    args = ["--pkcs11-module", MODULE, "--xks-ca-bundle", proxy.certificate, "--seed", str(seed)]
    server = Kmsd(str(directory), extra_args=args)
    try:
        kms = server.client()
        stores = {s["CustomKeyStoreName"]: s for s in kms.describe_custom_key_stores()["CustomKeyStores"]}
        assert settled(kms, stores["seeded-hsm"]["CustomKeyStoreId"])["ConnectionState"] == "CONNECTED"
        assert stores["seeded-xks"]["ConnectionState"] == "DISCONNECTED"
        key = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=stores["seeded-hsm"]["CustomKeyStoreId"])["KeyMetadata"]["KeyId"]
        assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"seeded")["CiphertextBlob"])["Plaintext"] == b"seeded"
    finally:
        server.stop()
    # The same seed again finds the stores; one that says another cluster stops kmsd.
    write("cluster-anotheronexx")
    again = subprocess.run([KMSD, "serve", "--store", server.store, "--listen", "tcp://127.0.0.1:0", *args],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "seed conflict in custom key store seeded-hsm" in again.stdout + again.stderr


def test_a_token_belongs_to_one_store_of_the_whole_service(world, hsm_store):
    """Another account (or Region) naming the same token is refused: a token has one user PIN,
    and a second login to it in the process would not be asked for it."""
    server, *_ = world
    out = subprocess.run([KMSD, "admin", "create-access-key", "--store", server.store, "--account", "444455556666"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    other = server.client(access_key=re.search(r"access key id: (\S+)", out.stdout).group(1),
                          secret_key=re.search(r"secret access key: (\S+)", out.stdout).group(1))
    assert error_code(lambda: other.create_custom_key_store(
        CustomKeyStoreName="mine", CloudHsmClusterId=CLUSTER, TrustAnchorCertificate="a", KeyStorePassword="not-the-pin")) == "CloudHsmClusterInUseException"
    other_region = server.client(region="us-west-2")
    assert error_code(lambda: other_region.create_custom_key_store(
        CustomKeyStoreName="hsm", CloudHsmClusterId=CLUSTER, TrustAnchorCertificate="a", KeyStorePassword="not-the-pin")) == "CloudHsmClusterInUseException"


def test_a_refused_create_key_leaves_nothing_in_the_token(world, hsm_store):
    server, proxy, tokens, directory, _ = world
    kms = server.client()
    before = token_objects(directory)
    lockout = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                                                                  "Action": "kms:Encrypt", "Resource": "*"}]})
    for _ in range(3):
        assert error_code(lambda: kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store, Policy=lockout)) == "MalformedPolicyDocumentException"
    assert token_objects(directory) == before
    key = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store)["KeyMetadata"]["KeyId"]
    assert token_objects(directory) == before + 1
    kms.disconnect_custom_key_store(CustomKeyStoreId=hsm_store)
    try:
        assert error_code(lambda: kms.update_custom_key_store(CustomKeyStoreId=hsm_store, CloudHsmClusterId="cluster-zzzzzzzzzzzz")) \
            == "CloudHsmClusterNotRelatedException"
    finally:
        kms.connect_custom_key_store(CustomKeyStoreId=hsm_store)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"


def test_a_stalled_proxy_holds_only_its_own_keys(world, xks_store):
    """Calls on keys behind a proxy that stopped answering wait on threads of their own (for the
    call deadline, a few at a time): an ordinary key's calls go on meanwhile."""
    import threading
    server, proxy, *_ = world
    kms = server.client()
    plain = kms.create_key()["KeyMetadata"]["KeyId"]
    xks_key = next(k["KeyId"] for k in kms.list_keys()["Keys"]
                   if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"].get("XksKeyConfiguration", {}).get("Id") == "xks-key-1")
    outcomes = []

    def stalled():
        client = server.client()
        try:
            client.encrypt(KeyId=xks_key, Plaintext=b"x")
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])

    proxy.process.send_signal(signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=stalled) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        for _ in range(20):
            assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=plain, Plaintext=b"y")["CiphertextBlob"])["Plaintext"] == b"y"
        waiting = sum(thread.is_alive() for thread in threads)
    finally:
        proxy.process.send_signal(signal.SIGCONT)
    for thread in threads:
        thread.join(30)
    # The ordinary key's 20 round trips were done while calls on the stalled proxy still waited.
    assert waiting > 0, outcomes
    assert set(outcomes) <= {"ok", "KMSInvalidStateException"} and "KMSInvalidStateException" in outcomes


def test_custom_key_stores_reconnect_after_a_rotation_of_the_root_key(world, hsm_store, xks_store):
    """Their secrets (token password, proxy credential) are sealed again under the new root key,
    in the store and in the running kmsd: each store disconnects and connects again, and what its
    keys sealed before still decrypts. Last in this module: the server's root key changes."""
    server, proxy, *_ = world
    kms = server.client()
    key = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=hsm_store)["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"before the root key rotation")["CiphertextBlob"]
    rotated = subprocess.run([KMSD, "admin", "rotate-root-key", "--store", server.store, "--new-root-key-file",
                              os.path.join(server.directory, "new-root.key")], capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    # Every store made in this module so far has its secret sealed again (hsm and xks at least).
    assert int(re.search(r"(\d+) custom key store secrets", rotated.stdout).group(1)) >= 2, rotated.stdout
    for store in (hsm_store, xks_store):
        kms.disconnect_custom_key_store(CustomKeyStoreId=store)
        assert settled(kms, store)["ConnectionState"] == "DISCONNECTED"
        kms.connect_custom_key_store(CustomKeyStoreId=store)
        assert settled(kms, store)["ConnectionState"] == "CONNECTED", store_entry(kms, store)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before the root key rotation"
