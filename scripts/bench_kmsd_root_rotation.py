"""Driver of scripts/bench-kmsd-root-rotation: a kmsd on an SQLite store of N keys (each with one
material version, an alias and a rotation period), one client thread decrypting in a loop, and a rotation of the
root key through the admin socket; the rotation's wall time and the Decrypt latencies before and
during it."""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "IntegrationTests"))
from conftest import KMSD, Kmsd  # noqa: E402
from bench_seed import seed  # noqa: E402

SIZES = [int(n) for n in " ".join(sys.argv[1:]).split()] or [1000, 10000]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def main():
    print("| keys | rotation (wall, admin command) | Decrypt p50 / p99 / max before | during the rotation | Decrypt calls failed |")
    print("|---|---|---|---|---|")
    for count in SIZES:
        with tempfile.TemporaryDirectory(prefix="kmsd-bench-rotate-") as directory:
            server = Kmsd(directory)
            try:
                seed(directory, ["--store", server.store], count, key_lines="        rotationPeriodInDays: 90\n")
                kms = server.client()
                blob = kms.encrypt(KeyId="alias/bench-0", Plaintext=b"x" * 32)["CiphertextBlob"]
                samples, failures, stop = [], [], threading.Event()

                def load():
                    client = server.client()
                    while not stop.is_set():
                        start = time.monotonic()
                        try:
                            client.decrypt(CiphertextBlob=blob)
                            samples.append((start, time.monotonic() - start))
                        except Exception as error:  # noqa: BLE001 - counted
                            failures.append(repr(error))

                thread = threading.Thread(target=load)
                thread.start()
                time.sleep(3)
                began = time.monotonic()
                rotated = subprocess.run([KMSD, "admin", "rotate-root-key", "--store", server.store, "--new-root-key-file",
                                          os.path.join(directory, "new.key")], capture_output=True, text=True, timeout=3600)
                ended = time.monotonic()
                time.sleep(1)
                stop.set()
                thread.join()
                assert rotated.returncode == 0, rotated.stderr
                before = [s for t, s in samples if t < began]
                during = [s for t, s in samples if began <= t < ended]

                def cell(values):
                    return "%.1f / %.1f / %.1f ms (%d calls)" % (statistics.median(values) * 1e3, percentile(values, 0.99) * 1e3,
                                                               max(values) * 1e3, len(values)) if values else "none"
                print("| %d | %.2f s | %s | %s | %d |" % (count, ended - began, cell(before), cell(during), len(failures)))
            finally:
                server.stop()


if __name__ == "__main__":
    main()
