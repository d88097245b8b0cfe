"""Driver of scripts/bench-kmsd-sign: Sign and Verify with an ECC_NIST_P256 key through kmsd at
16 connections (wrk replaying a request pre-signed by botocore; SigV4 verified and every call
audited), beside OpenSSL's own ECDSA P-256 speed on this machine in the same run."""
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
    with tempfile.TemporaryDirectory(prefix="bench-kmsd-sign-") as directory:
        server = Server(os.environ["KMSD_BIN"], directory, "current")
        try:
            kms = server.client("kms")
            key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
            message = b"x" * 64
            signature = kms.sign(KeyId=key, Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
            encoded = base64.b64encode(message).decode()
            requests = {
                "Sign": {"KeyId": key, "Message": encoded, "SigningAlgorithm": "ECDSA_SHA_256"},
                "Verify": {"KeyId": key, "Message": encoded, "Signature": base64.b64encode(signature).decode(),
                           "SigningAlgorithm": "ECDSA_SHA_256"},
            }
            for _ in range(ROUNDS):
                for operation, body in requests.items():
                    headers, payload = presign(server.port, server.access, server.secret, operation, body)
                    r = wrk(server.port, headers, payload, 16, directory)
                    results.setdefault(operation, []).append(r)
                    print("%s: %s" % (operation, r), file=sys.stderr)
        finally:
            server.stop()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("Machine: %s, %d cores; wrk -t1, 16 connections, %d rounds alternating, medians; SigV4 verified and audit on." % (
        cpu, os.cpu_count(), ROUNDS))
    print("OpenSSL's own ECDSA P-256 on one core, same run: %.0f sign/s, %.0f verify/s." % (sign_speed, verify_speed))
    print()
    print("| ECC_NIST_P256 | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    import statistics
    for operation, runs in results.items():
        print("| %s | %.0f | %.2f | %.2f | %d |" % (operation, statistics.median(r["rps"] for r in runs),
                                                 statistics.median(r["p50"] for r in runs), statistics.median(r["p99"] for r in runs),
                                                 sum(r["errors"] for r in runs)))


if __name__ == "__main__":
    main()
