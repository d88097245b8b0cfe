"""kmsd under a mixed load at 64 connections (kmsd_load.py): every answer is a 200 with the right
contents, and kmsd's resident memory does not grow after warm-up. KMSD_LOAD_SECONDS sets the
length (CI: 20 s; the soak: 1 800 s), KMSD_LOAD_REPORT a JSON file for the figures."""
import json
import os

import kmsd_load

SECONDS = float(os.environ.get("KMSD_LOAD_SECONDS", "20"))


def test_mixed_load_at_64_connections(kmsd):
    client = kmsd.client()
    keys = [client.create_key(Description="load %d" % n)["KeyMetadata"]["KeyId"] for n in range(8)]
    figures = kmsd_load.run(kmsd.port, kmsd.access_key, kmsd.secret_key, keys, kmsd.process.pid, SECONDS,
                            sample_every=max(1.0, SECONDS / 200))
    start, end = kmsd_load.memory_growth(figures["memory_kib"])
    figures.update(memory_after_warm_up_kib=start, memory_at_end_kib=end)
    if os.environ.get("KMSD_LOAD_REPORT"):
        with open(os.environ["KMSD_LOAD_REPORT"], "w") as report:
            json.dump(figures, report)
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["operations"] > SECONDS * 50, figures
    # No growth: at most 10% and 8 MiB over the resident size after warm-up (allocator slack).
    assert end <= start * 1.10 + 8192, (start, end)
    assert kmsd.process.poll() is None
