"""kmsd instances on one PostgreSQL store, each a process of its own with its own port, admin
socket and copy of the audit anchor (as on machines of their own); and a network that goes
silent. For test_postgres_ha.py (one serving, standbys) and test_postgres_shared.py (all serving)."""
import os
import shutil
import socket
import subprocess
import threading
import time

import boto3
import botocore.config

from conftest import KMSD, REGION, stop_process


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Instance:
    """One kmsd process on the shared store, on a port chosen in advance (a standby binds it only
    when it takes over)."""

    def __init__(self, name, store_args, directory, standby=False, shared=False):
        self.name, self.port = name, free_port()
        self.log_path = os.path.join(directory, name + ".log")
        # Each instance keeps its own copy of the audit anchor, as on machines of their own: a
        # copy lags the trail while another instance serves, and must still be accepted.
        anchor = os.path.join(directory, name + ".anchor")
        shutil.copy(os.path.join(directory, "anchor"), anchor)
        self.args = [*store_args, *(["--shared"] if shared else []), "--audit-anchor", anchor, "--admin-socket", os.path.join(directory, name + ".admin.sock"),
                     "--listen", "tcp://127.0.0.1:%d" % self.port]
        self.start(standby)

    def start(self, standby=False):
        self.log = open(self.log_path, "a")
        self.ready_before = self.text().count("kmsd: ready")
        self.process = subprocess.Popen([KMSD, "serve", *(["--standby"] if standby else []), *self.args],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_for("standby: waiting" if standby else "kmsd: ready", self.text().count("standby: waiting") if standby else self.ready_before)

    def text(self):
        return open(self.log_path).read() if os.path.exists(self.log_path) else ""

    def wait_for(self, line, count_before, timeout=60):
        deadline = time.time() + timeout
        while self.text().count(line) <= count_before:
            assert self.process.poll() is None, self.text()
            assert time.time() < deadline, "no %r in %s" % (line, self.text())
            time.sleep(0.02)

    def serving(self):
        return self.text().count("kmsd: ready") > self.ready_before

    def kill(self):
        self.process.kill()
        self.process.wait()
        self.log.close()

    def stop(self):
        stop_process(self.process)
        self.log.close()


def client(instance, credentials):
    return boto3.client("kms", endpoint_url="http://127.0.0.1:%d" % instance.port, region_name=REGION,
                        aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1],
                        config=botocore.config.Config(retries={"max_attempts": 1}))


class FreezingProxy:
    """TCP on loopback to the PostgreSQL server's Unix socket, forwarding until `freeze()`, after
    which it holds every byte and answers nothing: a network that went silent."""

    def __init__(self, socket_path):
        self.socket_path, self.frozen = socket_path, threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.socket_path)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(source, target), daemon=True).start()

    def pump(self, source, target):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.frozen.is_set():
                continue  # swallowed: the peer hears nothing
            target.sendall(data)

    def freeze(self):
        self.frozen.set()


