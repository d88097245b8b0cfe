"""Request quotas per account and operation class (`kmsd serve --quota CLASS=RATE`), through boto3:
a burst over a class's rate is refused with ThrottlingException (HTTP 400, AWS's wording) and
audited; other classes and other accounts are not affected; the bucket refills at the rate; a
kmsfs volume on a throttling kmsd still creates every file (its client backs off and retries)."""
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

from conftest import KMSD, REGION, Kmsd
from test_mount import foreground_mount, new_volume


@pytest.fixture()
def limited():
    with tempfile.TemporaryDirectory(prefix="kmsd-quota-") as directory:
        server = Kmsd(directory, extra_args=("--quota", "management=5", "--quota", "cryptographic=40"))
        try:
            yield server
        finally:
            server.stop()


def burst(call, count):
    """Calls `call` `count` times at once; returns how many were throttled (the rest succeed)."""
    throttled = 0
    for _ in range(count):
        try:
            call()
        except botocore.exceptions.ClientError as error:
            assert error.response["Error"]["Code"] == "ThrottlingException", error.response
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert error.response["Error"]["Message"] == "Rate exceeded"
            throttled += 1
    return throttled


def no_retries(client):
    """The same client without botocore's own retries (a throttled call must show as such)."""
    return boto3.client("kms", endpoint_url=client.meta.endpoint_url, region_name=REGION,
                        aws_access_key_id=client._request_signer._credentials.access_key,
                        aws_secret_access_key=client._request_signer._credentials.secret_key,
                        config=botocore.config.Config(retries={"total_max_attempts": 1}))


def test_quotas_by_class_and_account(limited):
    kms = no_retries(limited.client())
    assert "quota: management 5.0 requests per second per account" in open(limited.log_path).read()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    time.sleep(1.2)  # the management bucket full again
    # Management: 5 in a burst, the rest refused.
    assert burst(lambda: kms.describe_key(KeyId=key), 12) >= 6
    # Cryptographic calls count against their own rate, not management's.
    assert burst(lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_256"), 20) == 0
    assert burst(lambda: kms.generate_random(NumberOfBytes=8), 60) >= 15
    # Another account has buckets of its own.
    created = subprocess.run([KMSD, "admin", "create-access-key", "--store", limited.store, "--account", "222233334444"],
                             check=True, capture_output=True, text=True).stdout
    other = no_retries(limited.client(re.search(r"access key id: (\S+)", created).group(1), re.search(r"secret access key: (\S+)", created).group(1)))
    assert burst(lambda: other.list_keys(), 5) == 0
    # The bucket refills at the rate.
    time.sleep(1.2)
    assert burst(lambda: kms.describe_key(KeyId=key), 3) == 0
    # Throttled calls are in the trail, with the quota named.
    limited.stop()
    trail = subprocess.run([KMSD, "audit", "tail", "--store", limited.store, "--limit", "500"], check=True, capture_output=True, text=True).stdout
    throttled = [json.loads(line) for line in trail.splitlines() if '"ThrottlingException"' in line]
    assert throttled and {r["operation"] for r in throttled} == {"DescribeKey", "GenerateRandom"}
    assert all("request quota" in r.get("note", "") for r in throttled)
    limited.log = open(limited.log_path, "a")
    limited.start()


def test_a_volume_on_a_throttling_kmsd_creates_every_file():
    with tempfile.TemporaryDirectory(prefix="kmsd-quota-volume-") as directory:
        # 20 data keys a second: creating 60 files (one key each, and the key pool's refills)
        # runs into the quota and backs off.
        kmsd = Kmsd(directory, extra_args=("--quota", "cryptographic=20"))
        try:
            key = kmsd.client().create_key()["KeyMetadata"]["Arn"]
            env = kmsd.client_environment()
            with new_volume("kmsfs-throttled-", *kmsd.volume_arguments(key), env=env) as (cipher, mount_point):
                with foreground_mount(cipher, mount_point, env=env):
                    for index in range(60):
                        with open(os.path.join(mount_point, "f%02d" % index), "w") as f:
                            f.write("file %d" % index)
                with foreground_mount(cipher, mount_point, env=env):
                    assert [open(os.path.join(mount_point, "f%02d" % i)).read() for i in range(60)] == ["file %d" % i for i in range(60)]
            kmsd.stop()
            trail = subprocess.run([KMSD, "audit", "tail", "--store", kmsd.store, "--limit", "2000"], check=True, capture_output=True,
                                   text=True).stdout
            assert '"ThrottlingException"' in trail, "the quota was never reached: the test proves nothing"
        finally:
            if kmsd.process.poll() is None:
                kmsd.stop()


def test_a_rate_below_one_a_second_still_lets_requests_through():
    with tempfile.TemporaryDirectory(prefix="kmsd-quota-slow-") as directory:
        kmsd = Kmsd(directory, extra_args=("--quota", "management=0.5"))
        try:
            kms = no_retries(kmsd.client())
            assert burst(lambda: kms.list_keys(), 3) == 2  # one passes at once, then one every two seconds
            time.sleep(2.2)
            assert burst(lambda: kms.list_keys(), 1) == 0
        finally:
            kmsd.stop()


def test_iam_calls_count_and_odd_rates_are_refused():
    with tempfile.TemporaryDirectory(prefix="kmsd-quota-iam-") as directory:
        kmsd = Kmsd(directory, extra_args=("--quota", "management=3"))
        try:
            iam = boto3.client("iam", endpoint_url=kmsd.endpoint, region_name=REGION, aws_access_key_id=kmsd.access_key,
                               aws_secret_access_key=kmsd.secret_key, config=botocore.config.Config(retries={"total_max_attempts": 1}))
            throttled = 0
            for index in range(10):
                try:
                    iam.create_user(UserName="quota-%d" % index)
                except botocore.exceptions.ClientError as error:
                    assert "Throttling" in error.response["Error"]["Code"], error.response
                    throttled += 1
            assert throttled >= 6
        finally:
            kmsd.stop()
    for rate in ("0x10", "1e-300", "0", "-5", "nan", "5000000"):
        with tempfile.TemporaryDirectory(prefix="kmsd-quota-bad-") as directory:
            with pytest.raises(RuntimeError) as refused:
                Kmsd(directory, extra_args=("--quota", "management=" + rate))
            assert "RATE from 0.01 to 1000000" in str(refused.value), rate


def test_cross_account_calls_count_against_the_key_owner():
    """As AWS counts them: another account's cryptographic calls on a key (named by ARN, or found
    through a ciphertext) use up the key owner's quota, not the caller's."""
    with tempfile.TemporaryDirectory(prefix="kmsd-quota-owner-") as directory:
        kmsd = Kmsd(directory, extra_args=("--quota", "cryptographic=10"))
        try:
            owner = no_retries(kmsd.client())
            created = subprocess.run([KMSD, "admin", "create-access-key", "--store", kmsd.store, "--account", "222233334444"],
                                     check=True, capture_output=True, text=True).stdout
            partner = no_retries(kmsd.client(re.search(r"access key id: (\S+)", created).group(1),
                                             re.search(r"secret access key: (\S+)", created).group(1)))
            key = owner.create_key(Policy=json.dumps({"Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"},
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222233334444:root"},
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}))["KeyMetadata"]["Arn"]
            blob = owner.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
            time.sleep(1.2)  # the owner's bucket full again
            # The partner's calls by ARN and by ciphertext drain the owner's bucket...
            assert burst(lambda: partner.generate_data_key(KeyId=key, KeySpec="AES_256"), 6) == 0
            assert burst(lambda: partner.decrypt(CiphertextBlob=blob), 12) >= 6
            # (A token comes back every 100 ms: on a loaded machine one or two may be back by now.
            # Had the partner's calls used its own bucket, the owner's would be full: none refused.)
            assert burst(lambda: owner.encrypt(KeyId=key, Plaintext=b"x"), 3) >= 1
            # ... and not the partner's own: a call without a key is the caller's.
            assert burst(lambda: partner.generate_random(NumberOfBytes=8), 8) == 0
            kmsd.stop()
            trail = subprocess.run([KMSD, "audit", "tail", "--store", kmsd.store, "--limit", "500"], check=True, capture_output=True,
                                   text=True).stdout
            assert "over the key owner's (111122223333) cryptographic request quota" in trail
        finally:
            if kmsd.process.poll() is None:
                kmsd.stop()
