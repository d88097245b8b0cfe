"""A store of N keys for the kmsd benchmarks (scripts/bench-kmsd-follow, -root-rotation)."""
import os
import subprocess
import uuid


def seed(directory, store_args, count, key_lines=""):
    """A store of `count` keys, each with an alias alias/bench-N (and `key_lines` of YAML more),
    made by `kmsd admin seed` in one transaction."""
    path = os.path.join(directory, "seed.yaml")
    with open(path, "w") as f:
        f.write("region: us-east-1\naccounts:\n  - id: \"111122223333\"\n    keys:\n")
        for index in range(count):
            f.write("      - id: %s\n        aliases: [alias/bench-%d]\n%s" % (uuid.uuid4(), index, key_lines))
    result = subprocess.run([os.environ["KMSD_BIN"], "admin", "seed", *store_args, path], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr
