"""Driver of scripts/bench-kmsd-store: kmsd on SQLite against kmsd on PostgreSQL (one serving
instance with a standby), and against two instances serving one PostgreSQL store together
(`--shared`, 32 connections to each); same machine, same run, interleaved; then failover times. The PostgreSQL server is the tests'
(Tests/IntegrationTests/conftest.py: a cluster in a temporary directory, fsync on here)."""
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "IntegrationTests"))
from bench_kmsd import free_port, presign, wait_for, wrk  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
KMSD = os.environ["KMSD_BIN"]
os.environ.setdefault("KMSD_BIN", KMSD)
from conftest import PostgresServer  # noqa: E402


class Server:
    def __init__(self, directory, name, store_args, standby=False, shared=False):
        self.port = free_port()
        self.log_path = os.path.join(directory, name + ".log")
        self.args = [*store_args, *(["--shared"] if shared else []), "--admin-socket", os.path.join(directory, name + ".sock"), "--listen", "tcp://127.0.0.1:%d" % self.port]
        self.start(standby)

    def start(self, standby):
        self.process = subprocess.Popen([KMSD, "serve", *(["--standby"] if standby else []), *self.args],
                                        stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
        if not standby:
            wait_for(self.port)

    def kill(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def init(store_args):
    out = subprocess.run([KMSD, "init", *store_args, "--account", "111122223333"], check=True, capture_output=True, text=True).stdout
    return re.search(r"access key id: (\S+)", out).group(1), re.search(r"secret access key: (\S+)", out).group(1)


def client(port, credentials):
    return boto3.client("kms", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1",
                        aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1],
                        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))


def requests_for(port, credentials):
    kms = client(port, credentials)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    context = {"volume": "bench", "file": "0123456789abcdef"}
    blob = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=context)["CiphertextBlob"]
    return key, {
        "GenerateDataKey": presign(port, *credentials, "GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": context}),
        "Decrypt": presign(port, *credentials, "Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode(), "EncryptionContext": context}),
    }


def measure(name, targets, operation, directory):
    """wrk at 64 connections in all: on one port, or split over several at once (summed rps, the
    worst p99)."""
    results = [None] * len(targets)

    def one(index):
        port, _, requests = targets[index]
        headers, body = requests[operation]
        place = os.path.join(directory, "%s-%d" % (name, index))
        os.makedirs(place, exist_ok=True)
        results[index] = wrk(port, headers, body, 64 // len(targets), place)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rps": sum(r["rps"] for r in results), "p99": max(r["p99"] for r in results), "errors": sum(r["errors"] for r in results)}


def failover_seconds(primary, standby, key, credentials):
    """SIGKILL the serving instance; seconds until the standby first answers GenerateDataKey."""
    kms = client(standby.port, credentials)
    killed = time.perf_counter()
    primary.kill()
    while True:
        try:
            kms.generate_data_key(KeyId=key, KeySpec="AES_256")
            return time.perf_counter() - killed
        except Exception:
            time.sleep(0.005)


def main():
    postgres = PostgresServer()
    # The tests' cluster runs with fsync off; the benchmark measures a durable one.
    postgres.run("pg_ctl", "-D", postgres.directory + "/data", "-m", "fast", "-w", "restart",
                 "-o", "-k %s -c listen_addresses='' -c fsync=on -c max_connections=300" % postgres.directory)
    servers = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-kmsd-store-") as directory:
            sqlite_args = ["--store", directory + "/keys.sqlite"]
            pg_args = ["--store", postgres.new_database(), "--root-key-file", directory + "/root.key", "--audit-anchor", directory + "/anchor"]
            shared_args = ["--store", postgres.new_database(), "--root-key-file", directory + "/root-shared.key",
                           "--audit-anchor", directory + "/anchor-shared"]
            sqlite_credentials, pg_credentials, shared_credentials = init(sqlite_args), init(pg_args), init(shared_args)
            sqlite = Server(directory, "sqlite", sqlite_args)
            primary = Server(directory, "pg-a", pg_args)
            standby = Server(directory, "pg-b", pg_args, standby=True)
            together = [Server(directory, "shared-%d" % i, shared_args, shared=True) for i in range(2)]
            servers = [sqlite, primary, standby, *together]
            signed = {"sqlite": [(sqlite.port,) + requests_for(sqlite.port, sqlite_credentials)],
                      "postgres": [(primary.port,) + requests_for(primary.port, pg_credentials)],
                      "shared": [(s.port,) + requests_for(s.port, shared_credentials) for s in together]}
            names = ["sqlite", "postgres", "shared"]
            results = {}
            for round_number in range(ROUNDS):
                for operation in ["GenerateDataKey", "Decrypt"]:
                    for name in names[round_number % 3:] + names[:round_number % 3]:
                        result = measure(name, signed[name], operation, directory)
                        results.setdefault((operation, name), []).append(result)
                        print("round %d %s %s: %s" % (round_number + 1, name, operation, result), file=sys.stderr)
            # Failover: kill the serving instance, time the standby's first answer, bring the
            # killed one back as the new standby; both ways.
            key = signed["postgres"][0][1]
            times = []
            for _ in range(3 * 2):
                times.append(failover_seconds(primary, standby, key, pg_credentials))
                primary.start(standby=True)
                primary, standby = standby, primary
                time.sleep(1)
    finally:
        for server in servers:
            server.stop()
        postgres.stop()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("Machine: %s, %d cores, shared by kmsd, PostgreSQL 15 (fsync on) and wrk; 64 connections, %d s per cell, %d rounds "
          "interleaved (medians); audit on, SigV4 verified on every request." % (cpu, os.cpu_count(), SECONDS, ROUNDS))
    print()
    print("| operation | SQLite req/s | p99 ms | PostgreSQL, one serving | p99 ms | / SQLite | PostgreSQL, two --shared | p99 ms | / SQLite | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for operation in ["GenerateDataKey", "Decrypt"]:
        s, p, t = (results[(operation, name)] for name in names)
        rps = lambda rs: statistics.median(r["rps"] for r in rs)
        p99 = lambda rs: statistics.median(r["p99"] for r in rs)
        print("| %s | %.0f | %.2f | %.0f | %.2f | %.2f× | %.0f | %.2f | %.2f× | %d |" % (
            operation, rps(s), p99(s), rps(p), p99(p), rps(p) / rps(s), rps(t), p99(t), rps(t) / rps(s),
            sum(r["errors"] for r in s + p + t)))
    print()
    print("SIGKILL of the serving instance to the standby's first answer (%d takeovers): median %.0f ms, max %.0f ms." % (
        len(times), 1000 * statistics.median(times), 1000 * max(times)))


if __name__ == "__main__":
    main()
