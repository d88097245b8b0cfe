"""A mixed load on kmsd: worker processes, each with threads on kept-alive connections, sending
SigV4-signed (by botocore) KMS requests of many kinds for a given time, checking every answer
(status 200, and for Decrypt and ReEncrypt that the plaintext comes back), while the parent
samples kmsd's resident memory. Used by test_kmsd_load.py (CI: seconds; the soak: 30 minutes).

Given several ports (instances of one service), a worker fails over as kmsfs's client does: a
connection failure or a 5xx moves it to the next port, and the request is retried there with
capped exponential backoff and full jitter, up to `ATTEMPTS` times; throttling is retried on the
same port. A request counts as failed only when its retries are spent."""
import base64
import http.client
import json
import multiprocessing
import random
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials

REGION = "us-east-1"
ATTEMPTS = 8
BASE_DELAY, MAXIMUM_DELAY = 0.05, 2.0

# Operations whose retry after a lost answer is harmless (no alias churn): for failover runs.
RETRY_SAFE_MIX = [
    (30, "GenerateDataKey"), (25, "Decrypt"), (10, "Encrypt"), (5, "ReEncrypt"),
    (5, "GenerateDataKeyWithoutPlaintext"), (8, "DescribeKey"), (3, "ListKeys"), (5, "GenerateRandom"), (3, "TagResource"),
]

# (weight, operation): each builds a request from the worker's state and checks the answer.
MIX = [
    (30, "GenerateDataKey"), (25, "Decrypt"), (10, "Encrypt"), (5, "ReEncrypt"),
    (5, "GenerateDataKeyWithoutPlaintext"), (8, "DescribeKey"), (3, "ListKeys"), (3, "ListAliases"),
    (5, "GenerateRandom"), (3, "TagResource"), (2, "CreateAlias"),
]


class Worker:
    """One connection's traffic: its own keys to use, blobs to decrypt, and an alias to move."""

    def __init__(self, ports, credentials, keys, name, seed, mix=None):
        self.ports = ports if isinstance(ports, list) else [ports]
        self.current = 0
        self.keys, self.name, self.mix = keys, name, mix or MIX
        self.failovers = 0
        self.signer = botocore.auth.SigV4Auth(credentials, "kms", REGION)
        self.rng = random.Random(seed)
        self.blobs = []  # (blob, plaintext, context)
        self.alias = None
        self.connection = None

    def call(self, target, body):
        # One port: no retry at all, so that the load test sees every failure of kmsd itself.
        attempts = ATTEMPTS if len(self.ports) > 1 else 1
        for attempt in range(1, attempts + 1):
            try:
                status, payload = self.send(target, body)
            except (OSError, http.client.HTTPException) as error:
                status, payload = None, repr(error).encode()
            if status == 200:
                return json.loads(payload)
            throttled = status in (400, 429) and b"ThrottlingException" in payload
            if status is not None and status < 500 and not throttled:
                raise RuntimeError("%s: HTTP %d %s" % (target, status, payload[:200]))
            if attempt == attempts:
                raise RuntimeError("%s: still failing after %d attempts: %s %s" % (target, attempt, status, payload[:200]))
            if not throttled and len(self.ports) > 1:
                self.current = (self.current + 1) % len(self.ports)
                self.failovers += 1
                self.connection = None
            time.sleep(self.rng.uniform(0, min(MAXIMUM_DELAY, BASE_DELAY * 2 ** (attempt - 1))))

    def send(self, target, body):
        """One attempt on the current port: (status, body)."""
        port = self.ports[self.current]
        request = botocore.awsrequest.AWSRequest(
            method="POST", url="http://127.0.0.1:%d/" % port, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target})
        self.signer.add_auth(request)
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            self.connection.request("POST", "/", body=request.body, headers=dict(request.headers.items()))
            response = self.connection.getresponse()
            payload = response.read()
        except Exception:
            self.connection.close()
            self.connection = None
            raise
        return response.status, payload

    def step(self):
        rng = self.rng
        operation = rng.choices([op for _, op in self.mix], [w for w, _ in self.mix])[0]
        key = rng.choice(self.keys)
        context = {"worker": self.name, "n": str(rng.randrange(1000))}
        if operation == "Decrypt" and not self.blobs:
            operation = "GenerateDataKey"
        if operation == "GenerateDataKey":
            answer = self.call(operation, {"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": context})
            self.remember(answer["CiphertextBlob"], base64.b64decode(answer["Plaintext"]), context)
        elif operation == "Encrypt":
            plaintext = rng.randbytes(rng.randrange(1, 4096))
            answer = self.call(operation, {"KeyId": key, "Plaintext": base64.b64encode(plaintext).decode(),
                                           "EncryptionContext": context})
            self.remember(answer["CiphertextBlob"], plaintext, context)
        elif operation == "Decrypt":
            blob, plaintext, context = rng.choice(self.blobs)
            answer = self.call(operation, {"CiphertextBlob": blob, "EncryptionContext": context})
            if base64.b64decode(answer["Plaintext"]) != plaintext:
                raise RuntimeError("Decrypt returned other bytes")
        elif operation == "ReEncrypt":
            if not self.blobs:
                return self.step()
            blob, plaintext, context = self.blobs.pop(rng.randrange(len(self.blobs)))
            answer = self.call(operation, {"CiphertextBlob": blob, "SourceEncryptionContext": context,
                                           "DestinationKeyId": key, "DestinationEncryptionContext": context})
            check = self.call("Decrypt", {"CiphertextBlob": answer["CiphertextBlob"], "EncryptionContext": context})
            if base64.b64decode(check["Plaintext"]) != plaintext:
                raise RuntimeError("ReEncrypt lost the plaintext")
            self.remember(answer["CiphertextBlob"], plaintext, context)
        elif operation == "GenerateDataKeyWithoutPlaintext":
            self.call(operation, {"KeyId": key, "NumberOfBytes": 32})
        elif operation == "DescribeKey":
            self.call(operation, {"KeyId": key})
        elif operation == "ListKeys":
            self.call(operation, {"Limit": 10})
        elif operation == "ListAliases":
            self.call(operation, {"Limit": 10})
        elif operation == "GenerateRandom":
            self.call(operation, {"NumberOfBytes": rng.randrange(1, 1024)})
        elif operation == "TagResource":
            # Few tag keys, values rewritten: a key stays under AWS's 50 tags.
            self.call(operation, {"KeyId": key, "Tags": [{"TagKey": "load-%d" % rng.randrange(5), "TagValue": self.name}]})
        elif operation == "CreateAlias":
            # One alias per worker, deleted and created again: the store does not grow.
            if self.alias:
                self.call("DeleteAlias", {"AliasName": self.alias})
            self.alias = "alias/load-%s" % self.name
            self.call(operation, {"AliasName": self.alias, "TargetKeyId": key})
        return operation

    def remember(self, blob, plaintext, context):
        """Keeps up to 64 recent ciphertexts to decrypt later."""
        self.blobs.append((blob, plaintext, context))
        if len(self.blobs) > 64:
            self.blobs.pop(0)


def _process(port, access, secret, keys, index, threads, seconds, queue, mix=None, spread=False):
    import threading
    credentials = botocore.credentials.Credentials(access, secret)
    totals = {"operations": 0, "errors": 0, "samples": [], "latencies": [], "failovers": 0}
    lock = threading.Lock()
    deadline = time.time() + seconds

    def run(number):
        worker = Worker(port, credentials, keys, "p%dt%d" % (index, number), seed=index * 1000 + number, mix=mix)
        if spread:
            worker.current = (index * threads + number) % len(worker.ports)
        done, errors, samples, latencies = 0, 0, [], []
        while time.time() < deadline:
            started = time.perf_counter()
            try:
                worker.step()
                done += 1
            except Exception as error:  # every failure counts; a few are kept for the report
                errors += 1
                if len(samples) < 3:
                    samples.append(repr(error)[:300])
            if done % 50 == 0:
                latencies.append(time.perf_counter() - started)
        with lock:
            totals["failovers"] += worker.failovers
            totals["operations"] += done
            totals["errors"] += errors
            totals["samples"] += samples
            totals["latencies"] += latencies

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put(totals)


def resident_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def run(port, access, secret, keys, pid, seconds, connections=64, processes=4, sample_every=2.0, mix=None, spread=False):
    """The load for `seconds`; returns operations, errors, error samples, throughput, latency
    percentiles and kmsd's resident-memory samples (KiB, with their times; none without `pid`).
    `port`: one port, or a list to fail over between; with `spread`, connections start on each
    port in turn (instances that all serve), else on the first."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_process, args=(port, access, secret, keys, i, connections // processes, seconds, queue, mix, spread))
                for i in range(processes)]
    started = time.time()
    for child in children:
        child.start()
    memory = []
    while any(child.is_alive() for child in children) and time.time() < started + seconds + 60:
        if pid is not None:
            memory.append((round(time.time() - started, 1), resident_kib(pid)))
        time.sleep(sample_every)
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    elapsed = time.time() - started
    latencies = sorted(sum((r["latencies"] for r in results), []))
    percentile = lambda p: round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None
    operations = sum(r["operations"] for r in results)
    return {
        "seconds": round(elapsed, 1), "connections": connections, "operations": operations,
        "errors": sum(r["errors"] for r in results), "error_samples": sum((r["samples"] for r in results), [])[:10],
        "per_second": round(operations / elapsed), "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
        "memory_kib": memory, "failovers": sum(r["failovers"] for r in results),
    }


def memory_growth(samples, warm_up_fraction=0.2):
    """Resident memory after warm-up and at the end (median of the last 10% of samples), KiB."""
    if len(samples) < 5:
        return samples[0][1], samples[-1][1]
    start = samples[int(len(samples) * warm_up_fraction)][1]
    tail = sorted(kib for _, kib in samples[-max(1, len(samples) // 10):])
    return start, tail[len(tail) // 2]
