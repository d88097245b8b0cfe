"""Driver of scripts/bench-kmsd-sign: Sign and Verify with an ECC_NIST_P256 key through kmsd at
16 connections (wrk replaying a request pre-signed by botocore; SigV4 verified and every call
audited), beside OpenSSL's own ECDSA P-256 speed on this machine in the same run, and beside a
baseline kmsd (BASELINE_KMSD_BIN) when one is given: this machine's noise between runs is larger
than most changes, so a change is judged by its ratio to the baseline in alternating rounds."""
import base64
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from bench_kmsd import presign, wrk  # noqa: E402
from bench_kmsd_policy import Server  # noqa: E402

ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def main():
    speed = subprocess.run(["openssl", "speed", "-seconds", "3", "ecdsap256"], capture_output=True, text=True).stdout
    line = next((l for l in speed.splitlines() if "ecdsa (nistp256)" in l), "")
    numbers = re.findall(r"[\d.]+", line.split(")", 1)[-1])
    sign_speed, verify_speed = (float(numbers[-2]), float(numbers[-1])) if len(numbers) >= 2 else (0, 0)
    results = {}
    builds = [("current", os.environ["KMSD_BIN"])]
    if os.environ.get("BASELINE_KMSD_BIN"):
        builds.append(("baseline", os.environ["BASELINE_KMSD_BIN"]))
    with tempfile.TemporaryDirectory(prefix="bench-kmsd-sign-") as directory:
        servers = {}
        try:
            requests = {}
            for name, binary in builds:
                server = servers[name] = Server(binary, directory, name)
                kms = server.client("kms")
                key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
                message = b"x" * 64
                signature = kms.sign(KeyId=key, Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
                encoded = base64.b64encode(message).decode()
                requests[name] = {
                    "Sign": {"KeyId": key, "Message": encoded, "SigningAlgorithm": "ECDSA_SHA_256"},
                    "Verify": {"KeyId": key, "Message": encoded, "Signature": base64.b64encode(signature).decode(),
                               "SigningAlgorithm": "ECDSA_SHA_256"},
                }
            for _ in range(ROUNDS):
                for operation in ("Sign", "Verify"):
                    for name, _ in builds:
                        server = servers[name]
                        headers, payload = presign(server.port, server.access, server.secret, operation, requests[name][operation])
                        r = wrk(server.port, headers, payload, 16, directory)
                        results.setdefault((operation, name), []).append(r)
                        print("%s %s: %s" % (operation, name, r), file=sys.stderr)
        finally:
            for server in servers.values():
                server.stop()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("Machine: %s, %d cores; wrk -t1, 16 connections, %d rounds alternating, medians; SigV4 verified and audit on." % (
        cpu, os.cpu_count(), ROUNDS))
    print("OpenSSL's own ECDSA P-256 on one core, same run: %.0f sign/s, %.0f verify/s." % (sign_speed, verify_speed))
    print()
    import statistics
    median = {key: statistics.median(r["rps"] for r in runs) for key, runs in results.items()}
    baseline = len(builds) > 1
    print("| ECC_NIST_P256 | build | req/s | p50 ms | p99 ms | errors |" + (" vs baseline |" if baseline else ""))
    print("|---|---|---|---|---|---|" + ("---|" if baseline else ""))
    for (operation, name), runs in results.items():
        ratio = " %.2f× |" % (median[(operation, name)] / median[(operation, "baseline")]) if baseline else ""
        print("| %s | %s | %.0f | %.2f | %.2f | %d |%s" % (
            operation, name, median[(operation, name)], statistics.median(r["p50"] for r in runs),
            statistics.median(r["p99"] for r in runs), sum(r["errors"] for r in runs), ratio))

if __name__ == "__main__":
    main()
