"""Fixtures that start real kmsd processes on a random loopback port and a Unix socket.

Every process started here is stopped (SIGTERM, then SIGKILL) when its fixture ends, whether the
tests passed or not."""
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest

KMSD = os.environ.get("KMSD_BIN") or os.path.join(os.path.dirname(__file__), "../../.build/debug/kmsd")
ACCOUNT = "111122223333"
REGION = "us-east-1"


class Kmsd:
    """One running kmsd: its endpoint, socket, credentials and log."""

    def __init__(self, directory, idle_timeout=30, serve_args=None, extra_args=()):
        self.directory = directory
        self.store = os.path.join(directory, "keys.sqlite")
        self.socket_path = os.path.join(directory, "kmsd.sock")
        out = subprocess.run([KMSD, "init", "--store", self.store, "--account", ACCOUNT],
                             check=True, capture_output=True, text=True).stdout
        self.access_key = re.search(r"access key id: (\S+)", out).group(1)
        self.secret_key = re.search(r"secret access key: (\S+)", out).group(1)
        self.log_path = os.path.join(directory, "kmsd.log")
        self.log = open(self.log_path, "w")
        args = serve_args if serve_args is not None else [
            "--store", self.store, "--listen", "tcp://127.0.0.1:0",
            "--listen", "unix://%s?mode=0600" % self.socket_path, "--idle-timeout", str(idle_timeout), *extra_args]
        self.process = subprocess.Popen([KMSD, "serve", *args], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            text = open(self.log_path).read()
            if "kmsd: ready" in text:
                break
            if self.process.poll() is not None:
                raise RuntimeError("kmsd exited: " + text)
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("kmsd did not become ready: " + open(self.log_path).read())
        self.endpoints = re.findall(r"listening on (\S+)", open(self.log_path).read())
        self.endpoint = next((e for e in self.endpoints if e.startswith("http")), None)
        self.port = int(self.endpoint.rsplit(":", 1)[1]) if self.endpoint else None

    def client(self, access_key=None, secret_key=None, region=REGION):
        return boto3.client(
            "kms", endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=botocore.config.Config(retries={"max_attempts": 1}))

    def signed_request(self, target, body, *, secret=None, when=None, extra_headers=None, host=None):
        """Headers and body of a SigV4-signed POST, signed by botocore itself."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target}
        headers.update(extra_headers or {})
        request = botocore.awsrequest.AWSRequest(method="POST", url="http://%s/" % (host or "127.0.0.1:%d" % self.port),
                                                 headers=headers, data=body)
        credentials = botocore.credentials.Credentials(self.access_key, secret or self.secret_key)
        signer = botocore.auth.SigV4Auth(credentials, "kms", REGION)
        if when is not None:
            from unittest import mock
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                signer.add_auth(request)
        else:
            signer.add_auth(request)
        return dict(request.headers.items()), body

    def raw(self, target, body, connection=None, **kwargs):
        """Sends a signed request over TCP; returns (status, parsed JSON or raw text, headers)."""
        headers, payload = self.signed_request(target, body, **kwargs)
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("POST", "/", body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data
        return response.status, parsed, dict(response.getheaders())

    def client_environment(self, **extra):
        """An environment in which kmsfs (and the aws CLI) authenticate to this kmsd and nothing else."""
        return dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key,
                    AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", **extra)

    def volume_arguments(self, key_id):
        """`kmsfs init` arguments for a volume whose keys come from this kmsd over its Unix socket."""
        return ["--kms-endpoint", "unix://" + self.socket_path, "--region", REGION, "--kms-key", key_id]

    def stop(self):
        stop_process(self.process)
        self.log.close()


def stop_process(process):
    """SIGTERM (a clean shutdown), then SIGKILL if it has not ended within 30 s (a debug build
    on a loaded machine can take a few seconds to drain and flush)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix domain socket."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


@contextlib.contextmanager
def running_kmsd(idle_timeout=30, extra_args=()):
    with tempfile.TemporaryDirectory(prefix="kmsd-test-") as directory:
        server = Kmsd(directory, idle_timeout=idle_timeout, extra_args=extra_args)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def kmsd():
    with running_kmsd() as server:
        yield server


@pytest.fixture()
def own_kmsd():
    """A kmsd for one test alone: for tests that stop it."""
    with running_kmsd() as server:
        yield server


@pytest.fixture()
def kms(kmsd):
    return kmsd.client()


@pytest.fixture()
def key(kms):
    return kms.create_key(Description="pytest")["KeyMetadata"]
