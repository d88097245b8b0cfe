"""Driver of scripts/bench-rewrap: `kmsfs rewrap` of N files (offline, on a volume whose keys come
from kmsd over a Unix socket), files per second, for --jobs 1, 4 and 16 (the default), each
after the files were moved back to the first key. Prints a Markdown table."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

KMSFS, KMSD = os.environ["KMSFS_BIN"], os.environ["KMSD_BIN"]
FILES = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000


def main():
    with tempfile.TemporaryDirectory(prefix="bench-rewrap-", dir="/var/tmp") as root:
        store, sock = os.path.join(root, "keys.sqlite"), os.path.join(root, "kmsd.sock")
        init = subprocess.run([KMSD, "init", "--store", store, "--account", "111122223333"], check=True, capture_output=True, text=True).stdout
        access = re.search(r"access key id: (\S+)", init).group(1)
        secret = re.search(r"secret access key: (\S+)", init).group(1)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = open(os.path.join(root, "kmsd.log"), "w")
        kmsd = subprocess.Popen([KMSD, "serve", "--store", store, "--listen", "unix://" + sock, "--listen", "tcp://127.0.0.1:%d" % port],
                                stdout=log, stderr=subprocess.STDOUT)
        cipher, mount_point = os.path.join(root, "cipher"), os.path.join(root, "mnt")
        try:
            while not os.path.exists(sock):
                time.sleep(0.05)
            import boto3
            kms = boto3.client("kms", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1",
                               aws_access_key_id=access, aws_secret_access_key=secret)
            first, second = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
            env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret,
                       AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
            remote = ["--kms-endpoint", "unix://" + sock, "--region", "us-east-1"]
            subprocess.run([KMSFS, "init", cipher, *remote, "--kms-key", first, "--allow-key", second], check=True, env=env,
                           capture_output=True, stdin=subprocess.DEVNULL)
            os.mkdir(mount_point)
            subprocess.run([KMSFS, "mount", cipher, mount_point], check=True, env=env, capture_output=True)
            try:
                for index in range(FILES):
                    directory = os.path.join(mount_point, "d%02d" % (index % 100))
                    os.makedirs(directory, exist_ok=True)
                    with open(os.path.join(directory, "f%05d" % index), "wb") as f:
                        f.write(b"x")
            finally:
                subprocess.run(["fusermount3", "-u", mount_point], check=True)
            time.sleep(0.5)
            print("kmsfs rewrap of %d files (offline), keys from kmsd over a Unix socket on this machine (%d cores)." % (FILES, os.cpu_count()))
            print()
            print("| --jobs | seconds | files/s |")
            print("|---|---|---|")
            target = second
            for jobs in (1, 4, 16):
                started = time.time()
                run = subprocess.run(["/usr/bin/time", "-f", "%U %S", KMSFS, "rewrap", cipher, "--to", target, "--jobs", str(jobs)], env=env, capture_output=True, text=True)
                print(run.stderr.strip().splitlines()[-1], file=sys.stderr)
                elapsed = time.time() - started
                assert run.returncode == 0 and "%d re-wrapped" % FILES in run.stdout, run.stdout + run.stderr
                print("| %d | %.2f | %.0f |" % (jobs, elapsed, FILES / elapsed))
                target = first if target == second else second
        finally:
            subprocess.run(["fusermount3", "-u", mount_point], capture_output=True)
            kmsd.send_signal(signal.SIGTERM)
            kmsd.wait(timeout=15)
            log.close()


if __name__ == "__main__":
    main()
