"""kmsd with a YAML configuration file and a TLS listener (self-signed certificate)."""
import os
import re
import select
import subprocess
import tempfile
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import SSLError, ClientError

from conftest import KMSD, Kmsd


def make_certificate(directory):
    cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_kmsd():
    with tempfile.TemporaryDirectory(prefix="kmsd-tls-") as directory:
        cert, key = make_certificate(directory)
        config = os.path.join(directory, "kmsd.yaml")
        with open(config, "w") as f:
            f.write("store: %s/keys.sqlite\nrootKey:\n  file: %s/root.key\nlisten:\n  - tls://127.0.0.1:0\n"
                    "tls:\n  certificate: %s\n  key: %s\nidleTimeout: 5\n" % (directory, directory, cert, key))
        server = Kmsd(directory, serve_args=["--config", config])
        server.certificate = cert
        try:
            yield server
        finally:
            server.stop()


def test_tls_listener_with_boto3(tls_kmsd):
    endpoint = tls_kmsd.endpoints[0]
    assert endpoint.startswith("https://127.0.0.1:")
    client = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1", verify=tls_kmsd.certificate,
                          aws_access_key_id=tls_kmsd.access_key, aws_secret_access_key=tls_kmsd.secret_key,
                          config=botocore.config.Config(retries={"max_attempts": 1}))
    key = client.create_key(Description="over TLS")["KeyMetadata"]
    blob = client.encrypt(KeyId=key["KeyId"], Plaintext=b"tls")["CiphertextBlob"]
    assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"tls"
    # A client that does not trust the certificate refuses to talk.
    untrusting = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=tls_kmsd.access_key, aws_secret_access_key=tls_kmsd.secret_key,
                              config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(SSLError):
        untrusting.list_keys()


def s_client(port, version):
    """openssl s_client's view of a handshake at exactly `version` (tls1_1, tls1_2)."""
    done = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-" + version,
                           "-cipher", "DEFAULT@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def accepted_port(process, seconds=20):
    """The port `openssl s_server -accept 127.0.0.1:0` chose, from its ACCEPT line: it listens
    from then on (a fixed sleep before connecting lost the race on a loaded CI machine)."""
    deadline = time.monotonic() + seconds
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            data = os.read(process.stdout.fileno(), 4096)
            assert data, "openssl s_server exited: %r" % seen
            seen += data
            found = re.search(rb"ACCEPT 127\.0\.0\.1:(\d+)", seen)
            if found:
                return int(found.group(1))
    raise AssertionError("openssl s_server did not listen within %d s: %r" % (seconds, seen))


def test_tls_below_1_2_is_refused(tls_kmsd):
    port = int(tls_kmsd.endpoints[0].rsplit(":", 1)[1])
    # Control: this machine's openssl can speak TLS 1.1 to a server that allows it, so a refusal
    # below is kmsd's doing, not the client's.
    control = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", tls_kmsd.certificate,
                                "-key", tls_kmsd.certificate.replace(".crt", ".key"), "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        control_port = accepted_port(control)
        code, out = s_client(control_port, "tls1_1")
        assert "Protocol  : TLSv1.1" in out and "Cipher is (NONE)" not in out, out
    finally:
        control.kill()
        control.wait()
    code, out = s_client(port, "tls1_1")
    # No cipher was agreed, and the server said why (alert 70: protocol_version).
    assert code != 0 and "Cipher is (NONE)" in out and "alert number 70" in out, out
    code, out = s_client(port, "tls1_2")
    assert "Protocol  : TLSv1.2" in out and "Cipher is (NONE)" not in out, out


def test_unknown_configuration_setting_is_refused():
    with tempfile.TemporaryDirectory(prefix="kmsd-config-") as directory:
        config = os.path.join(directory, "kmsd.yaml")
        with open(config, "w") as f:
            f.write("store: %s/keys.sqlite\nlisten:\n  - tcp://127.0.0.1:0\nlistne: typo\n" % directory)
        done = subprocess.run([KMSD, "serve", "--config", config], capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert "unknown setting(s) listne" in done.stderr


def test_tls_listener_needs_a_certificate():
    done = subprocess.run([KMSD, "serve", "--store", "/nonexistent/keys.sqlite", "--listen", "tls://127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "--tls-certificate" in done.stderr
