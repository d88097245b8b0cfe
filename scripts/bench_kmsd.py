"""Driver of scripts/bench-kmsd: starts kmsd and moto_server, pre-signs requests, runs wrk."""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
KMSD = os.environ["KMSD_BIN"]
CONNECTIONS = [1, 16, 64]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on %d" % port)


def presign(port, access, secret, target, body):
    request = botocore.awsrequest.AWSRequest(
        method="POST", url="http://127.0.0.1:%d/" % port, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(access, secret), "kms", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = "127.0.0.1:%d" % port
    return headers, request.data.decode()


def wrk(port, headers, body, connections, directory):
    script = os.path.join(directory, "request.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(body))
        for name, value in headers.items():
            if name.lower() != "content-length":
                f.write("wrk.headers[%s] = %s\n" % (json.dumps(name), json.dumps(value)))
    out = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % SECONDS, "--latency", "-s", script,
                          "http://127.0.0.1:%d/" % port], capture_output=True, text=True, check=True).stdout
    def latency(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": latency(50), "p99": latency(99),
            "errors": int(errors.group(1)) if errors else 0}


def main():
    with tempfile.TemporaryDirectory(prefix="bench-kmsd-") as directory:
        init = subprocess.run([KMSD, "init", "--store", directory + "/keys.sqlite", "--account", "111122223333"],
                              check=True, capture_output=True, text=True).stdout
        access = re.search(r"access key id: (\S+)", init).group(1)
        secret = re.search(r"secret access key: (\S+)", init).group(1)
        kmsd_port, moto_port = free_port(), free_port()
        log = open(directory + "/kmsd.log", "w")
        servers = [
            subprocess.Popen([KMSD, "serve", "--store", directory + "/keys.sqlite", "--listen", "tcp://127.0.0.1:%d" % kmsd_port],
                             stdout=log, stderr=subprocess.STDOUT),
            subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        try:
            wait_for(kmsd_port)
            wait_for(moto_port)
            requests = {}
            for name, port, (a, s) in [("kmsd", kmsd_port, (access, secret)), ("moto", moto_port, ("testing", "testing"))]:
                client = boto3.client("kms", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1",
                                      aws_access_key_id=a, aws_secret_access_key=s)
                key = client.create_key()["KeyMetadata"]["KeyId"]
                context = {"volume": "bench", "file": "0123456789abcdef"}
                blob = client.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=context)["CiphertextBlob"]
                requests[name] = (port, {
                    "GenerateDataKey": presign(port, a, s, "GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": context}),
                    "Decrypt": presign(port, a, s, "Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode(), "EncryptionContext": context}),
                })
            results = {}
            for operation in ["GenerateDataKey", "Decrypt"]:
                for connections in CONNECTIONS:
                    for name in ["kmsd", "moto"]:
                        port, signed = requests[name]
                        headers, body = signed[operation]
                        results[(operation, connections, name)] = wrk(port, headers, body, connections, directory)
                        print("%s %s c=%d: %s" % (name, operation, connections, results[(operation, connections, name)]), file=sys.stderr)
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
            log.close()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("Machine: %s, %d cores; wrk -t1, %d s per cell; kmsd verifies SigV4 on every request, audit on." % (cpu, os.cpu_count(), SECONDS))
    print()
    print("| operation | connections | kmsd req/s | kmsd p50 ms | kmsd p99 ms | moto req/s | moto p50 ms | moto p99 ms | kmsd / moto | errors (kmsd, moto) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (operation, connections, name), r in sorted(results.items()):
        if name != "kmsd":
            continue
        m = results[(operation, connections, "moto")]
        print("| %s | %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.1f× | %d, %d |" % (
            operation, connections, r["rps"], r["p50"], r["p99"], m["rps"], m["p50"], m["p99"], r["rps"] / m["rps"], r["errors"], m["errors"]))


if __name__ == "__main__":
    main()
