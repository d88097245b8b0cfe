"""Driver of scripts/bench: kmsfs and its peers on one backing filesystem, in interleaved rounds.

Each peer is mounted once (under DIR/<peer>/mnt, backing store DIR/<peer>/cipher); every round
runs each workload on every peer in turn, in a fresh directory, the order rotating from round to
round (A B C, B C A, C A B), after a sync, with caches dropped before the cold workloads. Reports medians, the ratio to gocryptfs and each daemon's
peak RSS (VmHWM), as Markdown (stdout) and JSON (--json). Every mount is undone at the end,
even on failure or Ctrl-C.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time

KMSFS = os.environ.get("KMSFS_BIN", "kmsfs")
KMSD = os.environ.get("KMSD_BIN", "kmsd")
PASSTHROUGH = os.environ.get("PASSTHROUGH_LL_BIN", "passthrough_ll")
PASSWORD_ARGS = ["-extpass", "echo kmsfs-bench"]


def run(argv, **kwargs):
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), result.returncode, result.stderr.strip()))


def mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_mounted(path, deadline=30):
    end = time.time() + deadline
    while not mounted(path):
        if time.time() > end:
            raise RuntimeError("%s did not mount" % path)
        time.sleep(0.05)


def daemon_pid(mount_point):
    """The process serving a FUSE mount: the one holding /dev/fuse whose command line names it."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a == mount_point.encode() for a in argv):
            return int(entry)
    return None


def peak_rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, TypeError):
        pass
    return None


class Peer:
    """One filesystem under test. `path` is where workloads run."""
    fuse = True

    def __init__(self, name, root):
        self.name = name
        self.root = os.path.join(root, name)
        self.cipher = os.path.join(self.root, "cipher")
        self.path = os.path.join(self.root, "mnt")

    def prepare(self):
        os.makedirs(self.path, exist_ok=True)

    def mount(self):
        raise NotImplementedError

    def unmount(self):
        """Unmounts and waits for the daemon to exit (it may still hold files in the backing store)."""
        pid = daemon_pid(self.path) if self.fuse else None
        for flags in (["-u"], ["-uz"]):
            if mounted(self.path):
                subprocess.run(["fusermount3", *flags, self.path], capture_output=True)
                time.sleep(0.2)
        end = time.time() + 15
        while pid is not None and os.path.exists("/proc/%d/cmdline" % pid) and open("/proc/%d/cmdline" % pid, "rb").read():
            if time.time() > end:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)

    def rss(self):
        return peak_rss_mib(daemon_pid(self.path)) if self.fuse else None


class Plain(Peer):
    fuse = False

    def mount(self):
        pass

    def unmount(self):
        pass


class Passthrough(Peer):
    def mount(self):
        os.makedirs(self.cipher, exist_ok=True)
        run([PASSTHROUGH, "-o", "source=" + self.cipher, self.path])
        wait_mounted(self.path)


class Gocryptfs(Peer):
    def mount(self):
        if not os.path.exists(os.path.join(self.cipher, "gocryptfs.conf")):
            os.makedirs(self.cipher, exist_ok=True)
            run(["gocryptfs", "-init", "-q", "-scryptn", "10", *PASSWORD_ARGS, self.cipher])
        run(["gocryptfs", "-q", *PASSWORD_ARGS, self.cipher, self.path])
        wait_mounted(self.path)


class Securefs(Peer):
    def mount(self):
        if not os.path.exists(self.cipher):
            os.makedirs(self.cipher)
            run(["securefs", "create", "--pass", "kmsfs-bench", "--pbkdf", "pkcs5-pbkdf2-hmac-sha256", "-r", "1000", self.cipher])
        run(["securefs", "mount", "-b", "--pass", "kmsfs-bench", self.cipher, self.path])
        wait_mounted(self.path)


class Kmsfs(Peer):
    """kmsfs on its embedded key service."""

    def init_arguments(self):
        return []

    def environment(self):
        return None

    def mount(self):
        if not os.path.exists(os.path.join(self.cipher, "kmsfs.conf")):
            run([KMSFS, "init", self.cipher, *self.init_arguments()], env=self.environment())
        run([KMSFS, "mount", self.cipher, self.path], env=self.environment())
        wait_mounted(self.path)


class KmsfsOnKmsd(Kmsfs):
    """kmsfs with its keys from a kmsd over a Unix socket."""

    kmsd = None

    def mount(self):
        if self.kmsd is None:
            self.mount_kmsd()
        super().mount()

    def mount_kmsd(self):
        if self.kmsd is None:
            os.makedirs(self.root, exist_ok=True)
            store = os.path.join(self.root, "keys.sqlite")
            init = subprocess.run([KMSD, "init", "--store", store, "--account", "111122223333"],
                                  check=True, capture_output=True, text=True).stdout
            self.access = re.search(r"access key id: (\S+)", init).group(1)
            self.secret = re.search(r"secret access key: (\S+)", init).group(1)
            self.socket = os.path.join(self.root, "kmsd.sock")
            self.log = open(os.path.join(self.root, "kmsd.log"), "w")
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            # The Unix socket serves the volume; loopback TCP only creates its key (with boto3).
            self.kmsd = subprocess.Popen([KMSD, "serve", "--store", store, "--listen", "unix://" + self.socket,
                                          "--listen", "tcp://127.0.0.1:%d" % port], stdout=self.log, stderr=subprocess.STDOUT)
            end = time.time() + 30
            while not os.path.exists(self.socket):
                if time.time() > end or self.kmsd.poll() is not None:
                    raise RuntimeError("kmsd did not start (see %s)" % self.log.name)
                time.sleep(0.05)
            import boto3
            kms = boto3.client("kms", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1",
                               aws_access_key_id=self.access, aws_secret_access_key=self.secret)
            self.key = kms.create_key(Description="kmsfs bench")["KeyMetadata"]["Arn"]

    def init_arguments(self):
        return ["--kms-endpoint", "unix://" + self.socket, "--region", "us-east-1", "--kms-key", self.key]

    def environment(self):
        return dict(os.environ, AWS_ACCESS_KEY_ID=self.access, AWS_SECRET_ACCESS_KEY=self.secret,
                    AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

    def unmount(self):
        super().unmount()
        if self.kmsd is not None:
            self.kmsd.send_signal(signal.SIGTERM)
            try:
                self.kmsd.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kmsd.kill()
                self.kmsd.wait()
            self.kmsd = None
            self.log.close()


class KmsfsPlaintextNames(Kmsfs):
    """kmsfs on its embedded key service with names kept in plaintext (kmsfs init --plaintext-names):
    the cost of encrypted names, which the plain `kmsfs` peer has."""

    def init_arguments(self):
        return ["--plaintext-names"]


class KmsfsBuckets(Kmsfs):
    """kmsfs on its embedded key service with bucket keys (one data key per 10 000 files)."""

    def init_arguments(self):
        return ["--bucket-keys"]


class DelayingProxy:
    """A Unix-socket relay to kmsd that holds every request `delay` seconds before passing it
    on: a key service 10 ms away (AWS KMS from outside its Region), on this machine."""

    def __init__(self, target, path, delay=0.010):
        import threading
        self.target, self.path, self.delay = target, path, delay
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import threading
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.target)
            threading.Thread(target=self.pipe, args=(client, server, self.delay), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, 0), daemon=True).start()

    @staticmethod
    def pipe(source, destination, delay):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                destination.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, destination):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


class KmsfsOnKmsd10ms(KmsfsOnKmsd):
    """kmsfs on kmsd with 10 ms added to every key service request (a relay in this script)."""

    proxy = None

    def mount(self):
        if self.kmsd is None:
            KmsfsOnKmsd.mount_kmsd(self)
            self.proxy = DelayingProxy(self.socket, os.path.join(self.root, "slow.sock"))
        super().mount()

    def init_arguments(self):
        return ["--kms-endpoint", "unix://" + os.path.join(self.root, "slow.sock"), "--region", "us-east-1", "--kms-key", self.key]

    def unmount(self):
        super().unmount()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None


class KmsfsOnKmsd10msBuckets(KmsfsOnKmsd10ms):
    """The same, with bucket keys."""

    def init_arguments(self):
        return super().init_arguments() + ["--bucket-keys"]


PEERS = {
    "plain": Plain,
    "passthrough_ll": Passthrough,
    "gocryptfs": Gocryptfs,
    "securefs": Securefs,
    "kmsfs": Kmsfs,
    "kmsfs-plaintext-names": KmsfsPlaintextNames,
    "kmsfs-buckets": KmsfsBuckets,
    "kmsfs-kmsd": KmsfsOnKmsd,
    "kmsfs-kmsd-10ms": KmsfsOnKmsd10ms,
    "kmsfs-kmsd-10ms-buckets": KmsfsOnKmsd10msBuckets,
}


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        print("bench: cannot drop caches (not root?): cold figures are warm", file=sys.stderr)


def timed(argv, cwd=None):
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def fio(directory, mode, seconds):
    """Random 4 KiB IOPS, 4 jobs, each on its own 64 MiB file (laid out before the clock starts)."""
    argv = ["fio", "--name=rand", "--directory=" + directory, "--rw=" + mode, "--bs=4k", "--size=64m",
            "--numjobs=4", "--time_based", "--runtime=%d" % seconds, "--ioengine=psync", "--group_reporting",
            "--output-format=json"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return job["read" if mode == "randread" else "write"]["iops"]


class Workloads:
    """Each workload takes the directory of this round on one peer and returns (value, unit).
    Workloads that read what an earlier one wrote run after it in the same round."""

    def __init__(self, size_mib, tarball, fio_seconds, small_files):
        self.size_mib = size_mib
        self.tarball = tarball
        self.fio_seconds = fio_seconds
        self.small_files = small_files

    def dd_write(self, d):
        # Freed page cache first: fresh memory is slow to come by in this virtual machine, and a
        # writer should not pay for the page cache of the peers before it.
        drop_caches()
        seconds = timed(["dd", "if=/dev/zero", "of=" + os.path.join(d, "big"), "bs=1M", "count=%d" % self.size_mib, "conv=fsync"])
        return self.size_mib / seconds, "MiB/s"

    def dd_read(self, d):
        drop_caches()
        seconds = timed(["dd", "if=" + os.path.join(d, "big"), "of=/dev/null", "bs=1M"])
        os.unlink(os.path.join(d, "big"))
        return self.size_mib / seconds, "MiB/s"

    def fio_randread(self, d):
        return fio(d, "randread", self.fio_seconds), "IOPS"

    def fio_randwrite(self, d):
        return fio(d, "randwrite", self.fio_seconds), "IOPS"

    def untar(self, d):
        os.mkdir(os.path.join(d, "tree"))
        start = time.perf_counter()
        subprocess.run(["tar", "xf", self.tarball, "-C", os.path.join(d, "tree")], check=True)
        subprocess.run(["sync", "-f", os.path.join(d, "tree")], check=True)
        return time.perf_counter() - start, "s"

    def ls_lR(self, d):
        drop_caches()
        return timed(["ls", "-lR", os.path.join(d, "tree")]), "s"

    def read_all(self, d):
        drop_caches()
        return timed(["tar", "cf", "/dev/null", "--dereference", "."], cwd=os.path.join(d, "tree")), "s"

    def create_small(self, d):
        target = os.path.join(d, "small")
        os.mkdir(target)
        payload = b"x" * 1000
        start = time.perf_counter()
        for i in range(self.small_files):
            with open(os.path.join(target, "f%05d" % i), "wb") as f:
                f.write(payload)
        return time.perf_counter() - start, "s"

    def rm_rf(self, d):
        return timed(["rm", "-rf", os.path.join(d, "tree"), os.path.join(d, "small")]), "s"


ORDER = ["dd-write", "dd-read", "fio-randread", "fio-randwrite", "untar", "ls-lR", "read-all", "create-5000", "rm-rf"]
METHOD = {"dd-write": "dd_write", "dd-read": "dd_read", "fio-randread": "fio_randread", "fio-randwrite": "fio_randwrite",
          "untar": "untar", "ls-lR": "ls_lR", "read-all": "read_all", "create-5000": "create_small", "rm-rf": "rm_rf"}
# Workloads whose figure is better when larger (throughput); the others are times.
HIGHER_IS_BETTER = {"dd-write", "dd-read", "fio-randread", "fio-randwrite"}


def make_tarball(path, source):
    """A tar of a real source tree (the Python standard library, without caches and packages)."""
    def keep(info):
        parts = info.name.split("/")
        return None if "__pycache__" in parts or "site-packages" in parts or "dist-packages" in parts else info
    with tarfile.open(path, "w") as tar:
        tar.add(source, arcname="stdlib", filter=keep)
    with tarfile.open(path) as tar:
        return sum(1 for m in tar.getmembers() if m.isfile())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/var/tmp/kmsfs-bench", help="work directory (all peers on this filesystem)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--workloads", default=",".join(ORDER))
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the sequential file")
    parser.add_argument("--fio-seconds", type=int, default=30)
    parser.add_argument("--small-files", type=int, default=5000)
    parser.add_argument("--source-tree", default=os.path.dirname(os.__file__))
    parser.add_argument("--json", help="write all samples here")
    parser.add_argument("--chart", help="write a PNG chart of every peer's ratio to gocryptfs here (matplotlib)")
    parser.add_argument("--tmpfs", metavar="SIZE", help="back every peer with a tmpfs of this size mounted on --dir "
                        "(the filesystems' own cost, without the disk's noise; tmpfs has user xattrs since Linux 6.6)")
    args = parser.parse_args()
    peers_wanted = args.peers.split(",")
    workloads_wanted = [w for w in ORDER if w in args.workloads.split(",")]
    unknown = (set(peers_wanted) - set(PEERS)) | (set(args.workloads.split(",")) - set(ORDER))
    if unknown:
        parser.error("unknown peer or workload: %s" % ", ".join(sorted(unknown)))

    if mounted(args.dir):
        subprocess.run(["umount", args.dir], check=True)
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    if args.tmpfs:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + args.tmpfs, "kmsfs-bench", args.dir], check=True)
    backing_fs = fs_type(args.dir)
    tarball = os.path.join(args.dir, "tree.tar")
    files = make_tarball(tarball, args.source_tree)
    workloads = Workloads(args.size_mib, tarball, args.fio_seconds, args.small_files)
    peers = [PEERS[name](name, args.dir) for name in peers_wanted]
    samples = {p.name: {w: [] for w in workloads_wanted} for p in peers}
    rss = {}
    try:
        for peer in peers:
            peer.prepare()
            peer.mount()
        for round_number in range(args.rounds):
            for peer in peers:
                os.mkdir(os.path.join(peer.path, "r%d" % round_number))
            # The order rotates from round to round (A B C, B C A, C A B): a peer that always ran
            # after another's big write would pay for that write's writeback.
            order = peers[round_number % len(peers):] + peers[:round_number % len(peers)]
            for workload in workloads_wanted:
                for peer in order:
                    d = os.path.join(peer.path, "r%d" % round_number)
                    # Every peer starts with no dirty pages of another's in flight.
                    os.sync()
                    value, unit = getattr(workloads, METHOD[workload])(d)
                    samples[peer.name][workload].append(value)
                    print("round %d %-14s %-14s %10.2f %s" % (round_number + 1, workload, peer.name, value, unit), file=sys.stderr)
            for peer in peers:
                shutil.rmtree(os.path.join(peer.path, "r%d" % round_number), ignore_errors=True)
        for peer in peers:
            rss[peer.name] = peer.rss()
    finally:
        for peer in peers:
            peer.unmount()
        if args.tmpfs and subprocess.run(["umount", args.dir]).returncode != 0:
            print("bench: could not unmount the tmpfs on %s" % args.dir, file=sys.stderr)
        shutil.rmtree(args.dir, ignore_errors=True)

    units = {w: ("MiB/s" if w.startswith("dd") else "IOPS" if w.startswith("fio") else "s") for w in workloads_wanted}
    medians = {p: {w: statistics.median(v) for w, v in s.items()} for p, s in samples.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print("Machine: %s, %d cores, kernel %s; backing filesystem: %s; %d rounds, interleaved; tree: %d files; "
          "sequential file %d MiB; fio %d s." % (cpu, os.cpu_count(), platform.release(), backing_fs, args.rounds,
                                                 files, args.size_mib, args.fio_seconds))
    print()
    names = [p.name for p in peers]
    # Ratio columns: each kmsfs peer against gocryptfs, when both ran.
    ratios = [n for n in names if n.startswith("kmsfs")] if "gocryptfs" in names else []
    print("| workload | " + " | ".join(names + ["%s / gocryptfs" % n for n in ratios]) + " |")
    print("|---" * (1 + len(names) + len(ratios)) + "|")
    for w in workloads_wanted:
        row = ["%s (%s)" % (w, units[w])] + ["%.2f" % medians[n][w] for n in names]
        for n in ratios:
            ratio = medians[n][w] / medians["gocryptfs"][w]
            # "How many times better": the throughput ratio, or the inverse of the time ratio.
            row.append("%.2f×" % (ratio if w in HIGHER_IS_BETTER else 1 / ratio))
        print("| " + " | ".join(row) + " |")
    print("| peak RSS (MiB) | " + " | ".join(["—" if rss.get(n) is None else "%.0f" % rss[n] for n in names] + [""] * len(ratios)) + " |")
    print()
    print("Ratios: kmsfs's figure over gocryptfs's for throughput, gocryptfs's time over kmsfs's for times: above 1× is kmsfs faster.")
    if args.chart and "gocryptfs" in names:
        chart(args.chart, names, workloads_wanted, medians)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "medians": medians, "peak_rss_mib": rss, "units": units, "files": files,
                       "rounds": args.rounds, "size_mib": args.size_mib}, f, indent=1)


def chart(path, names, workloads, medians):
    """Grouped bars: per workload, each peer's figure relative to gocryptfs (above 1 is faster)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    peers = [n for n in names if n != "gocryptfs"]
    width = 0.8 / max(len(peers), 1)
    figure, axes = plt.subplots(figsize=(12, 5))
    for i, peer in enumerate(peers):
        ratios = []
        for w in workloads:
            ratio = medians[peer][w] / medians["gocryptfs"][w]
            ratios.append(ratio if w in HIGHER_IS_BETTER else 1 / ratio)
        axes.bar([x + i * width for x in range(len(workloads))], ratios, width, label=peer)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks([x + width * (len(peers) - 1) / 2 for x in range(len(workloads))])
    axes.set_xticklabels(workloads, rotation=20)
    axes.set_yscale("log")
    axes.set_ylabel("speed relative to gocryptfs (log scale; >1 is faster)")
    axes.set_title("Peer benchmark: medians relative to gocryptfs")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def fs_type(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()
    return out or "?"


if __name__ == "__main__":
    main()
