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

    def __init__(self, directory, idle_timeout=30, serve_args=None, extra_args=(), store=None):
        """`store`: an SQLite file (default: keys.sqlite in `directory`) or a postgres:// URI, whose
        root key, audit anchor and admin socket are then files in `directory`."""
        self.directory = directory
        self.store = store or os.path.join(directory, "keys.sqlite")
        self.store_args = ["--store", self.store]
        if self.store.startswith("postgres"):
            self.store_args += ["--root-key-file", os.path.join(directory, "root.key"), "--audit-anchor", os.path.join(directory, "anchor"),
                                "--admin-socket", os.path.join(directory, "admin.sock")]
        self.socket_path = os.path.join(directory, "kmsd.sock")
        out = subprocess.run([KMSD, "init", *self.store_args, "--account", ACCOUNT],
                             check=True, capture_output=True, text=True).stdout
        self.access_key = re.search(r"access key id: (\S+)", out).group(1)
        self.secret_key = re.search(r"secret access key: (\S+)", out).group(1)
        self.log_path = os.path.join(directory, "kmsd.log")
        self.log = open(self.log_path, "w")
        self.serve_args = serve_args if serve_args is not None else [
            *self.store_args, "--listen", "tcp://127.0.0.1:0",
            "--listen", "unix://%s?mode=0600" % self.socket_path, "--idle-timeout", str(idle_timeout), *extra_args]
        self.start()

    def start(self):
        """Serves (again): a new process on the same store, on a new TCP port."""
        ready_before = open(self.log_path).read().count("kmsd: ready")
        self.process = subprocess.Popen([KMSD, "serve", *self.serve_args], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            text = open(self.log_path).read()
            if text.count("kmsd: ready") > ready_before:
                break
            if self.process.poll() is not None:
                raise RuntimeError("kmsd exited: " + text)
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("kmsd did not become ready: " + open(self.log_path).read())
        # This start's endpoints: the last lines of the log (one per listener, at least one).
        listeners = max(1, self.serve_args.count("--listen"))
        self.endpoints = re.findall(r"listening on (\S+)", open(self.log_path).read())[-listeners:]
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

    def kill(self):
        """SIGKILL: no shutdown at all (the log stays open for a restart)."""
        self.process.kill()
        self.process.wait()


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


class PostgresServer:
    """A PostgreSQL server for the tests (Debian's postgresql, installed by scripts/setup): a
    cluster made by initdb in a temporary directory, on a Unix socket there only; as the
    `postgres` user under root (PostgreSQL refuses root). Stopped when the session ends."""

    def __init__(self):
        versions = sorted(int(v) for v in os.listdir("/usr/lib/postgresql") if v.isdigit())
        self.bin = "/usr/lib/postgresql/%d/bin" % versions[-1]
        self.directory = tempfile.mkdtemp(prefix="kmsfs-pg-")
        if os.geteuid() == 0:
            import pwd
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self.run("initdb", "-D", self.directory + "/data", "-A", "trust", "-U", "kmsd", "--no-sync", "-E", "UTF8")
        self.run("pg_ctl", "-D", self.directory + "/data", "-l", self.directory + "/log", "-w", "start",
                 "-o", "-k %s -c listen_addresses='' -c fsync=off -c max_connections=300" % self.directory)
        self.databases = 0

    def run(self, program, *arguments):
        argv = [os.path.join(self.bin, program), *arguments]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # Output to a file: the server pg_ctl starts would keep a pipe open.
        with open(os.path.join(self.directory, program + ".out"), "w") as output:
            subprocess.run(argv, check=True, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120)

    def new_database(self):
        self.databases += 1
        name = "kmsd_test_%d_%d" % (os.getpid(), self.databases)
        self.run("createdb", "-h", self.directory, "-U", "kmsd", name)
        return "postgresql://kmsd@/%s?host=%s" % (name, self.directory)

    def psql(self, url, sql):
        """Runs SQL as the database's owner: what whoever can write the store can do."""
        name = url.split("/")[3].split("?")[0]
        argv = ["psql", "-h", self.directory, "-U", "kmsd", "-d", name, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.directory + "/data", "-m", "immediate", "-w", "stop")
        finally:
            subprocess.run(["rm", "-rf", self.directory], check=False)


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
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
