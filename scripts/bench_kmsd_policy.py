"""Driver of scripts/bench-kmsd-policy: GenerateDataKey through kmsd at 16 and 64 connections,
before authorization existed (a baseline kmsd binary), with the default key policy, and with a
realistic three-statement key policy with conditions — in one run, cell by cell alternating."""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile

import boto3

sys.path.insert(0, os.path.dirname(__file__))
from bench_kmsd import free_port, presign, wait_for, wrk  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
KMSD = os.environ["KMSD_BIN"]
BASELINE = os.environ.get("BASELINE_KMSD_BIN")
ACCOUNT = "111122223333"
CONTEXT = {"kmsfs:volume": "bench", "kmsfs:file": "0123456789abcdef"}

# Three statements with conditions, as a kmsfs deployment would write them.
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "MountOneVolume", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/mount" % ACCOUNT},
     "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:kmsfs:volume": "bench", "kms:CallerAccount": ACCOUNT}}},
    {"Sid": "NoOtherAccounts", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
     "Condition": {"StringNotEquals": {"kms:CallerAccount": ACCOUNT}}},
]}


class Server:
    def __init__(self, binary, directory, name):
        init = subprocess.run([binary, "init", "--store", directory + "/%s.sqlite" % name, "--account", ACCOUNT],
                              check=True, capture_output=True, text=True).stdout
        self.access = re.search(r"access key id: (\S+)", init).group(1)
        self.secret = re.search(r"secret access key: (\S+)", init).group(1)
        self.port = free_port()
        self.log = open(directory + "/%s.log" % name, "w")
        self.process = subprocess.Popen([binary, "serve", "--store", directory + "/%s.sqlite" % name,
                                         "--listen", "tcp://127.0.0.1:%d" % self.port], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.port)
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def client(self, service, access=None, secret=None):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access or self.access, aws_secret_access_key=secret or self.secret)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def data_key_request(server, key, access, secret):
    return presign(server.port, access, secret, "GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": CONTEXT})


def main():
    cells = {}
    with tempfile.TemporaryDirectory(prefix="bench-kmsd-policy-") as directory:
        servers = []
        try:
            if BASELINE:
                base = Server(BASELINE, directory, "baseline")
                servers.append(base)
                key = base.client("kms").create_key()["KeyMetadata"]["KeyId"]
                cells["before authorization (baseline build), default policy, account root"] = (base, data_key_request(base, key, base.access, base.secret))
            now = Server(KMSD, directory, "current")
            servers.append(now)
            key = now.client("kms").create_key()["KeyMetadata"]["KeyId"]
            cells["this build, default policy, account root"] = (now, data_key_request(now, key, now.access, now.secret))
            iam = now.client("iam")
            iam.create_user(UserName="mount")
            created = iam.create_access_key(UserName="mount")["AccessKey"]
            user = (created["AccessKeyId"], created["SecretAccessKey"])
            key = now.client("kms").create_key(Policy=json.dumps(POLICY))["KeyMetadata"]["KeyId"]
            now.client("kms", *user).generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=CONTEXT)
            cells["this build, three-statement policy with conditions, IAM user"] = (now, data_key_request(now, key, *user))
            results = {}
            for connections in [16, 64]:
                for _ in range(ROUNDS):
                    for name, (server, (headers, body)) in cells.items():
                        r = wrk(server.port, headers, body, connections, directory)
                        results.setdefault((name, connections), []).append(r)
                        print("%s c=%d: %s" % (name, connections, r), file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("Machine: %s, %d cores; wrk -t1, %d s per cell, %d rounds alternating, medians; SigV4 verified and audit on." % (
        cpu, os.cpu_count(), SECONDS, ROUNDS))
    print()
    print("| GenerateDataKey | connections | req/s | p50 ms | p99 ms | vs first row | errors |")
    print("|---|---|---|---|---|---|---|")
    for connections in [16, 64]:
        first = None
        for name in cells:
            runs = results[(name, connections)]
            rps = statistics.median(r["rps"] for r in runs)
            first = first or rps
            print("| %s | %d | %.0f | %.2f | %.2f | %.2f× | %d |" % (
                name, connections, rps, statistics.median(r["p50"] for r in runs), statistics.median(r["p99"] for r in runs),
                rps / first, sum(r["errors"] for r in runs)))


if __name__ == "__main__":
    main()
