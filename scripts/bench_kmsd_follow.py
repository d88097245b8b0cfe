"""Driver of scripts/bench-kmsd-follow: two kmsd instances serving one PostgreSQL store of N keys
(`--shared`); DisableKey and EnableKey on one, in turn, and on the other DescribeKey every 2 ms
until it shows the change: its next poll (every 100 ms) and its load. Rounds alternate between
the change feed as kmsd writes it and a feed spoiled before the change (an entry naming a table
kmsd has not: the follower reads the store whole); the follower's
`kmsd_store_full_loads_total` says which it did."""
import os
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "IntegrationTests"))
from bench_seed import seed  # noqa: E402
from conftest import PostgresServer  # noqa: E402
from kmsd_instances import Instance, client, free_port  # noqa: E402
from test_postgres_shared import initialise  # noqa: E402

SIZES = [int(n) for n in " ".join(sys.argv[1:]).split()] or [1000, 10000]
CHANGES = 20


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def seen_after(writer, reader, follower, key, enable, prepare=None):
    """Seconds from a change's answer on `writer` to `reader` showing it (the follower's next
    poll, within 100 ms, and its load); `prepare` runs before the change."""
    if prepare:
        prepare()
    (writer.enable_key if enable else writer.disable_key)(KeyId=key)
    changed = time.perf_counter()
    wanted = "Enabled" if enable else "Disabled"
    while True:
        assert follower.process.poll() is None and time.perf_counter() - changed < 60, follower.text()
        try:
            if reader.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == wanted:
                return time.perf_counter() - changed
        except Exception:  # noqa: BLE001 - a stale instance refuses; asked again
            pass
        time.sleep(0.002)


def cell(values):
    ordered = sorted(values)
    return "%.0f / %.0f / %.0f ms" % (statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1e3,
                                      ordered[-1] * 1e3)


def main():
    postgres = PostgresServer()
    print("| keys | seen on the other instance, change feed: p50 / p90 / max | full loads | feed spoiled (whole store read): p50 / p90 / max | full loads |")
    print("|---|---|---|---|---|")
    try:
        for count in SIZES:
            with tempfile.TemporaryDirectory(prefix="kmsd-bench-follow-") as directory:
                url, root, credentials = initialise(postgres, directory)
                store_args = ["--store", url, *root]
                seed(directory, store_args + ["--audit-anchor", os.path.join(directory, "anchor")], count)
                ports = [free_port(), free_port()]
                instances = []
                try:
                    for name, port in zip("ab", ports):
                        instances.append(Instance(name, store_args + ["--metrics", "127.0.0.1:%d" % port], directory, shared=True))
                    writer, reader = client(instances[0], credentials), client(instances[1], credentials)
                    key = writer.describe_key(KeyId="alias/bench-0")["KeyMetadata"]["KeyId"]
                    results = {"feed": [], "whole": []}
                    loads = {"feed": 0.0, "whole": 0.0}
                    for index in range(2 * CHANGES):
                        kind = "feed" if index % 2 == 0 else "whole"
                        before = metric(ports[1], "kmsd_store_full_loads_total")
                        # Disabled on even changes (the feed), enabled on odd ones: before those, an
                        # entry naming a table kmsd has not is put in the coming generation, so
                        # that the follower cannot use the feed and reads the store whole.
                        spoiled = (lambda: postgres.psql(url, "INSERT INTO change_feed SELECT MAX(generation) + 1, 'bench', '[]' FROM change_feed")) \
                            if kind == "whole" else None
                        results[kind].append(seen_after(writer, reader, instances[1], key, enable=index % 2 == 1, prepare=spoiled))
                        loads[kind] += metric(ports[1], "kmsd_store_full_loads_total") - before
                        time.sleep(0.3)
                    print("| %d | %s | %d | %s | %d |" % (count, cell(results["feed"]), loads["feed"], cell(results["whole"]), loads["whole"]))
                    sys.stdout.flush()
                finally:
                    for instance in instances:
                        if instance.process.poll() is None:
                            instance.stop()
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
