"""kmsd for developers and CI: `kmsd serve --dev` (a throwaway store, printed credentials, SigV4
still verified), seed files (`--seed`, idempotent, conflicts named), and credentials chosen by
the operator (`kmsd admin create-access-key --access-key-id --secret-access-key`). Real kmsd
processes, driven by the aws CLI and boto3; every process is stopped when its test ends."""
import base64
import contextlib
import json
import os
import re
import subprocess
import tempfile
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCOUNT, KMSD, REGION, stop_process

WELL_KNOWN = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
OTHER = ("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")
APP_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = "0b1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
MATERIAL = base64.b64encode(bytes(range(32))).decode()


class Served:
    """A kmsd serve process and what it printed."""

    def __init__(self, process, output_path):
        self.process, self.output_path = process, output_path

    @property
    def output(self):
        with open(self.output_path) as f:
            return f.read()

    @property
    def endpoint(self):
        return re.search(r"listening on (http://\S+)", self.output).group(1)


@contextlib.contextmanager
def serve(*arguments, env=None):
    """`kmsd serve ARGUMENTS` until it is ready (or has exited, for tests of refusals); stopped
    with SIGTERM (then SIGKILL) at the end."""
    with tempfile.NamedTemporaryFile("w+", prefix="kmsd-out-", suffix=".log") as output:
        process = subprocess.Popen([KMSD, "serve", *arguments], stdout=output, stderr=subprocess.STDOUT, env=env)
        served = Served(process, output.name)
        try:
            deadline = time.time() + 30
            while "kmsd: ready" not in served.output and process.poll() is None:
                assert time.time() < deadline, served.output
                time.sleep(0.05)
            yield served
        finally:
            stop_process(process)


def aws(endpoint, credentials, *arguments):
    """The real aws CLI pointed at `endpoint` the way an SDK environment is (AWS_ENDPOINT_URL_KMS)."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=credentials[0], AWS_SECRET_ACCESS_KEY=credentials[1],
               AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL_KMS=endpoint, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1")
    return subprocess.run(["aws", "kms", *arguments, "--output", "json"], capture_output=True, text=True, env=env)


def kms(endpoint, credentials, region=REGION):
    return boto3.client("kms", endpoint_url=endpoint, region_name=region, aws_access_key_id=credentials[0],
                        aws_secret_access_key=credentials[1], config=botocore.config.Config(retries={"max_attempts": 1}))


def printed_credentials(output):
    return (re.search(r"export AWS_ACCESS_KEY_ID=(\S+)", output).group(1),
            re.search(r"export AWS_SECRET_ACCESS_KEY=(\S+)", output).group(1))


def test_dev_mode_serves_the_printed_credentials_and_refuses_others():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with serve("--dev", "--port", "0", env=env) as kmsd:
        output = kmsd.output
        assert "DEV MODE" in output and "NOTHING IS PERSISTED" in output
        assert kmsd.endpoint.startswith("http://127.0.0.1:")
        credentials = printed_credentials(output)
        assert credentials == WELL_KNOWN
        store = re.search(r"throwaway key store in (\S+),", output).group(1)
        assert os.path.isdir(store)

        listed = aws(kmsd.endpoint, credentials, "list-keys")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["Keys"] == []
        created = aws(kmsd.endpoint, credentials, "create-key", "--description", "dev")
        assert json.loads(created.stdout)["KeyMetadata"]["Arn"].startswith("arn:aws:kms:%s:%s:key/" % (REGION, ACCOUNT))

        wrong_secret = aws(kmsd.endpoint, (credentials[0], OTHER[1]), "list-keys")
        assert wrong_secret.returncode != 0 and "InvalidSignatureException" in wrong_secret.stderr
        unknown = aws(kmsd.endpoint, OTHER, "list-keys")
        assert unknown.returncode != 0 and "UnrecognizedClientException" in unknown.stderr
        deadline = time.time() + 5
        while "does not know" not in kmsd.output and time.time() < deadline:
            time.sleep(0.1)
        assert "a request signed with access key %s, which this dev server does not know" % OTHER[0] in kmsd.output
    assert kmsd.process.returncode == 0
    assert not os.path.exists(store), "the throwaway store outlived kmsd"


def test_dev_mode_takes_the_account_and_credentials_it_is_given():
    env = dict(os.environ, AWS_ACCESS_KEY_ID=OTHER[0], AWS_SECRET_ACCESS_KEY=OTHER[1])
    with serve("--dev", "--port", "0", "--account", "444455556666", env=env) as kmsd:
        assert printed_credentials(kmsd.output) == OTHER
        arn = kms(kmsd.endpoint, OTHER).create_key()["KeyMetadata"]["Arn"]
        assert ":444455556666:key/" in arn
    with serve("--dev", "--port", "0", "--access-key-id", WELL_KNOWN[0], "--secret-access-key", WELL_KNOWN[1], env=env) as kmsd:
        assert printed_credentials(kmsd.output) == WELL_KNOWN
        assert kms(kmsd.endpoint, WELL_KNOWN).list_keys()["Keys"] == []

    # Whatever the environment holds, as LocalStack and moto take it: test/test, testing/testing.
    for pair in (("test", "test"), ("testing", "testing")):
        with serve("--dev", "--port", "0", env=dict(env, AWS_ACCESS_KEY_ID=pair[0], AWS_SECRET_ACCESS_KEY=pair[1])) as lenient:
            assert printed_credentials(lenient.output) == pair
            assert kms(lenient.endpoint, pair).list_keys()["Keys"] == []
    # Refusals: an access key ID no Authorization header can carry, a store option with --dev.
    with serve("--dev", "--port", "0", env=dict(env, AWS_ACCESS_KEY_ID="a/b", AWS_SECRET_ACCESS_KEY="test")) as refused:
        assert refused.process.wait(timeout=10) != 0
        assert "access key ID is 1 to 128 printable characters" in refused.output
    with serve("--dev", "--store", "/tmp/nope.sqlite") as refused:
        assert refused.process.wait(timeout=10) != 0
        assert "--dev makes its own store" in refused.output


SEED = """
region: us-east-1
accounts:
  - id: "111122223333"
    name: default
    accessKeys:
      - id: {well_known_id}
        secret: {well_known_secret}
    keys:
      - id: {app_key}
        description: app data
        tags: {{team: storage}}
        material: {material}
        aliases: [alias/app]
      - description: rotating
        rotationPeriodInDays: 180
        aliases: [alias/rotating]
  - id: "444455556666"
    name: ci
    users:
      - name: ci
        policies:
          everything-kms: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Action: "kms:*", Resource: "*"}}]}}
    accessKeys:
      - id: {other_id}
        secret: {other_secret}
        user: ci
    keys:
      - id: {other_key}
        region: eu-west-1
        description: other account's key
        aliases: [alias/ci]
"""


def seed_text(**changes):
    values = dict(well_known_id=WELL_KNOWN[0], well_known_secret=WELL_KNOWN[1], other_id=OTHER[0], other_secret=OTHER[1],
                  app_key=APP_KEY, other_key=OTHER_KEY, material=MATERIAL)
    values.update(changes)
    return SEED.format(**values)


def test_seed_file_loads_reloads_without_change_and_names_conflicts(tmp_path):
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", ACCOUNT], check=True, capture_output=True)
    seed = tmp_path / "seed.yaml"
    seed.write_text(seed_text())
    arguments = ["--store", store, "--listen", "tcp://127.0.0.1:0", "--seed", str(seed)]

    with serve(*arguments) as kmsd:
        assert "seed %s: 10 created, 1 unchanged" % seed in kmsd.output, kmsd.output
        client = kms(kmsd.endpoint, WELL_KNOWN)
        described = client.describe_key(KeyId="alias/app")["KeyMetadata"]
        assert described["KeyId"] == APP_KEY and described["Origin"] == "EXTERNAL" and described["Description"] == "app data"
        assert client.list_resource_tags(KeyId=APP_KEY)["Tags"] == [{"TagKey": "team", "TagValue": "storage"}]
        rotating = client.describe_key(KeyId="alias/rotating")["KeyMetadata"]["KeyId"]
        status = client.get_key_rotation_status(KeyId=rotating)
        assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 180
        blob = client.encrypt(KeyId="alias/app", Plaintext=b"seeded", EncryptionContext={"t": "1"})["CiphertextBlob"]
        other = kms(kmsd.endpoint, OTHER, region="eu-west-1")
        assert other.describe_key(KeyId="alias/ci")["KeyMetadata"]["Arn"] == "arn:aws:kms:eu-west-1:444455556666:key/" + OTHER_KEY
        with pytest.raises(botocore.exceptions.ClientError):  # the accounts are apart
            other.describe_key(KeyId="arn:aws:kms:us-east-1:111122223333:key/" + APP_KEY)

    # Again at the next start: nothing new, and the ciphertext still decrypts.
    with serve(*arguments) as kmsd:
        assert "seed %s: 0 created, 11 unchanged" % seed in kmsd.output, kmsd.output
        assert kms(kmsd.endpoint, WELL_KNOWN).decrypt(CiphertextBlob=blob, EncryptionContext={"t": "1"})["Plaintext"] == b"seeded"

    # Conflicts and mistakes stop kmsd before it listens, naming the entry.
    for text, expected in [
        (seed_text().replace("description: app data", "description: changed"),
         "seed conflict in key %s: it exists with a different description" % APP_KEY),
        (seed_text(other_secret="x" * 40), "seed conflict in access key %s: it exists with a different secret" % OTHER[0]),
        (seed_text().replace("aliases: [alias/rotating]", "aliases: [alias/rotating, alias/app]"),
         "seed conflict in alias alias/app: it points at key %s" % APP_KEY),
        (seed_text().replace("rotationPeriodInDays", "rotationPeriod"), "accounts[0].keys[1]: unknown setting rotationPeriod"),
    ]:
        seed.write_text(text)
        with serve(*arguments) as refused:
            assert refused.process.wait(timeout=10) != 0
            assert expected in refused.output, refused.output
            assert "listening on" not in refused.output

    # The same seed in dev mode (its account and credentials are the dev ones: unchanged): a
    # throwaway store with the same material decrypts the blob.
    seed.write_text(seed_text())
    with serve("--dev", "--port", "0", "--seed", str(seed), env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")}) as kmsd:
        assert "seed %s: 9 created, 2 unchanged" % seed in kmsd.output, kmsd.output
        assert kms(kmsd.endpoint, WELL_KNOWN).decrypt(CiphertextBlob=blob, EncryptionContext={"t": "1"})["Plaintext"] == b"seeded"


def test_given_credentials_work_and_malformed_ones_are_refused(tmp_path):
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store], check=True, capture_output=True)
    admin = lambda *args: subprocess.run([KMSD, "admin", "create-access-key", "--store", store, *args], capture_output=True, text=True)
    made = admin("--account", "777788889999", "--access-key-id", OTHER[0], "--secret-access-key", OTHER[1])
    assert made.returncode == 0, made.stderr
    assert "account: 777788889999 created" in made.stdout and OTHER[1] not in made.stdout
    for arguments, message in [
        (["--access-key-id", "AKIA-SHORT", "--secret-access-key", OTHER[1]], "access key ID is 16 to 128"),
        (["--access-key-id", "AKIAJ7VLCM6EXAMPLE12", "--secret-access-key", "test"], "secret access key is 40 characters"),
        (["--access-key-id", "AKIAJ7VLCM6EXAMPLE12", "--secret-access-key", "a b" + "c" * 37], "secret access key is 40 characters"),
        (["--access-key-id", OTHER[0], "--secret-access-key", OTHER[1]], "already exists"),
        (["--access-key-id", "AKIAJ7VLCM6EXAMPLE12"], "give both"),
    ]:
        refused = admin("--account", "777788889999", *arguments)
        assert refused.returncode != 0 and message in refused.stderr + refused.stdout, (arguments, refused.stderr)
    with serve("--store", store, "--listen", "tcp://127.0.0.1:0") as kmsd:
        arn = kms(kmsd.endpoint, OTHER).create_key()["KeyMetadata"]["Arn"]
        assert ":777788889999:key/" in arn


def test_the_configuration_file_names_a_seed(tmp_path):
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", ACCOUNT], check=True, capture_output=True)
    (tmp_path / "seed.yaml").write_text(
        'accounts:\n  - id: "%s"\n    accessKeys: [{id: %s, secret: %s}]\n    keys: [{aliases: [alias/configured]}]\n'
        % (ACCOUNT, WELL_KNOWN[0], WELL_KNOWN[1]))
    config = tmp_path / "kmsd.yaml"
    config.write_text("store: %s\nlisten: [tcp://127.0.0.1:0]\nseed: %s\n" % (store, tmp_path / "seed.yaml"))
    with serve("--config", str(config)) as kmsd:
        assert "3 created, 1 unchanged" in kmsd.output, kmsd.output
        assert kms(kmsd.endpoint, WELL_KNOWN).describe_key(KeyId="alias/configured")["KeyMetadata"]["Enabled"]


def test_admin_applies_a_seed_to_a_stopped_store(tmp_path):
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", ACCOUNT], check=True, capture_output=True)
    seed = tmp_path / "seed.yaml"
    seed.write_text(seed_text())
    applied = subprocess.run([KMSD, "admin", "seed", "--store", store, str(seed)], capture_output=True, text=True)
    assert applied.returncode == 0 and "10 created, 1 unchanged" in applied.stdout, applied.stderr
    with serve("--store", store, "--listen", "tcp://127.0.0.1:0", "--seed", str(seed)) as kmsd:
        assert "0 created, 11 unchanged" in kmsd.output, kmsd.output
    seed.write_text(seed_text().replace("description: app data", "description: changed"))
    refused = subprocess.run([KMSD, "admin", "seed", "--store", store, str(seed)], capture_output=True, text=True)
    assert refused.returncode != 0 and "seed conflict in key %s" % APP_KEY in refused.stderr


def test_dev_mode_answers_a_test_suites_reset_and_only_dev_mode_does(tmp_path):
    """moto's harness resets its server between tests (`POST /moto-api/reset`, unsigned): the dev
    server removes every key and keeps the account and credentials; a real kmsd does not serve it."""
    import urllib.request
    moto = ("FOOBARKEY", "FOOBARSECRET")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=moto[0], AWS_SECRET_ACCESS_KEY=moto[1])
    with serve("--dev", "--port", "0", "--account", "123456789012", env=env) as kmsd:
        client = kms(kmsd.endpoint, moto)
        key = client.create_key()["KeyMetadata"]["KeyId"]
        client.create_alias(AliasName="alias/my-alias", TargetKeyId=key)
        with urllib.request.urlopen(urllib.request.Request(kmsd.endpoint + "/moto-api/reset", method="POST", data=b"")) as answer:
            assert answer.status == 200
        assert client.list_keys()["Keys"] == [] and client.list_aliases()["Aliases"] == []
        client.create_alias(AliasName="alias/my-alias", TargetKeyId=client.create_key()["KeyMetadata"]["KeyId"])
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", ACCOUNT], check=True, capture_output=True)
    with serve("--store", store, "--listen", "tcp://127.0.0.1:0") as kmsd:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(kmsd.endpoint + "/moto-api/reset", method="POST", data=b""))
        assert refused.value.code == 404


def test_init_with_a_bare_store_name_keeps_the_root_key_beside_it(tmp_path):
    result = subprocess.run([KMSD, "init", "--store", "keys.sqlite", "--account", ACCOUNT], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "root.key").exists() and oct((tmp_path / "root.key").stat().st_mode & 0o777) == "0o600"
    assert "generated into ./root.key" in result.stdout


def test_a_store_rolled_back_behind_its_audit_anchor_does_not_start(tmp_path):
    """Whoever can write the store (no root key) puts back an older copy of it: its audit trail
    verifies on its own, but the anchor kept outside the store names a later record."""
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", ACCOUNT], check=True, capture_output=True)
    assert (tmp_path / "keys.sqlite.audit-anchor").exists()
    earlier = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("keys.sqlite") and "anchor" not in p.name}
    subprocess.run([KMSD, "admin", "create-account", "--store", store, "--id", "444455556666", "--name", "later"],
                   check=True, capture_output=True)
    for stale in tmp_path.glob("keys.sqlite*"):
        if "anchor" not in stale.name and stale.name not in earlier:
            stale.unlink()
    for name, data in earlier.items():
        (tmp_path / name).write_bytes(data)
    with serve("--store", store, "--listen", "tcp://127.0.0.1:0") as refused:
        assert refused.process.wait(timeout=10) != 0
        assert "rolled back" in refused.output, refused.output
    verify = subprocess.run([KMSD, "audit", "verify", "--store", store], capture_output=True, text=True)
    assert verify.returncode != 0 and "rolled back" in verify.stderr + verify.stdout


def test_a_removed_audit_anchor_stops_kmsd_until_recreated_on_purpose(tmp_path):
    store = str(tmp_path / "keys.sqlite")
    subprocess.run([KMSD, "init", "--store", store, "--account", ACCOUNT], check=True, capture_output=True)
    (tmp_path / "keys.sqlite.audit-anchor").unlink()
    with serve("--store", store, "--listen", "tcp://127.0.0.1:0") as refused:
        assert refused.process.wait(timeout=10) != 0
        assert "kmsd admin anchor-audit" in refused.output, refused.output
    made = subprocess.run([KMSD, "admin", "anchor-audit", "--store", store], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    with serve("--store", store, "--listen", "tcp://127.0.0.1:0") as kmsd:
        assert "kmsd: ready" in kmsd.output, kmsd.output
