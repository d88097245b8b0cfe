"""Driver of scripts/bench-kmsd-peers: two deployments (kmsd processes with their own stores)
replicating multi-Region keys; the time until a change made at the primary is usable at the peer.
The certificates and deployments are made as Tests/IntegrationTests/test_peer_replication.py makes them."""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "IntegrationTests"))
from conftest import Kmsd  # noqa: E402
from kmsd_instances import free_port  # noqa: E402
from test_peer_replication import EU, US, issue, make_ca  # noqa: E402

SAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 10
BURST = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def deployments(directory, interval):
    ca = make_ca(directory, "peer-ca")
    certificates = {name: issue(directory, ca, name + ".peer.test") for name in ("us", "eu")}
    ports = {"us": free_port(), "eu": free_port()}
    made = {}
    for me, other, regions in (("us", "eu", EU), ("eu", "us", US)):
        home = os.path.join(directory, me)
        os.makedirs(home)
        path = os.path.join(home, "peering.yaml")
        with open(path, "w") as f:
            f.write("listen: tls://127.0.0.1:%d\nregions: [%s]\ncertificate: %s\nkey: %s\nca: %s\ninterval: %s\n"
                    "peers:\n  - name: %s.peer.test\n    endpoint: https://127.0.0.1:%d\n    regions: [%s]\n"
                    % (ports[me], US if me == "us" else EU, *certificates[me], ca + ".crt", interval, other, ports[other], regions))
        made[me] = Kmsd(home, extra_args=["--peering", path])
    return made["us"], made["eu"]


def until(check):
    """Seconds until `check()` succeeds (polled every 5 ms)."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - not there yet
            pass
        time.sleep(0.005)


def cell(values):
    return "%.0f ms / %.0f ms" % (statistics.median(values) * 1000, max(values) * 1000)


def main():
    print("| replication interval | ReplicateKey → replica usable at the peer (median / max) | RotateKeyOnDemand → new version decrypts at the peer |")
    print("|---|---|---|")
    burst_rate = None
    for interval in (1.0, 0.2):
        with tempfile.TemporaryDirectory(prefix="kmsd-bench-peers-") as directory:
            us, eu = deployments(directory, interval)
            try:
                east, west = us.client(region=US), eu.client(region=EU)
                created, rotated = [], []
                for _ in range(SAMPLES):
                    key = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
                    start = time.monotonic()
                    east.replicate_key(KeyId=key, ReplicaRegion=EU)
                    created.append(time.monotonic() - start + until(lambda: west.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"))
                    east.rotate_key_on_demand(KeyId=key)
                    start = time.monotonic()
                    blob = east.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
                    rotated.append(time.monotonic() - start + until(lambda: west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"))
                print("| %.1f s | %s | %s |" % (interval, cell(created), cell(rotated)))
                if interval == 0.2:
                    keys = [east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"] for _ in range(BURST)]
                    start = time.monotonic()
                    for key in keys:
                        east.replicate_key(KeyId=key, ReplicaRegion=EU)
                    calls = time.monotonic() - start
                    until(lambda: len(west.list_keys(Limit=1000)["Keys"]) >= BURST + SAMPLES)
                    burst_rate = (BURST, calls, time.monotonic() - start)
            finally:
                us.stop()
                eu.stop()
    count, calls, total = burst_rate
    print()
    print("Burst: %d ReplicateKey calls took %.1f s; all %d replicas were usable at the peer %.1f s after the first call (%.0f keys/s)."
          % (count, calls, count, total, count / total))


main()
