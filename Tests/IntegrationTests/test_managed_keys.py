"""Key managers: the AWS-managed key of kmsfs (`alias/aws/kmsfs`) on a real kmsd — made on first
use, rotated yearly, usable only through kmsfs, its policy not editable — and a kmsfs volume that
uses it by default, through a real mount."""
import json
import os
import subprocess
import tempfile

import pytest
from botocore.exceptions import ClientError

from test_mount import KMSFS, foreground_mount


def error_code(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def init_default(kmsd, root, name):
    cipher = os.path.join(root, name)
    made = subprocess.run([KMSFS, "init", cipher, "--kms-endpoint", "unix://" + kmsd.socket_path, "--region", "us-east-1"],
                          capture_output=True, text=True, env=kmsd.client_environment(), stdin=subprocess.DEVNULL, timeout=60)
    assert made.returncode == 0, made.stderr
    return cipher


def test_a_volume_on_kmsd_without_a_key_uses_the_aws_managed_kmsfs_key(own_kmsd):
    kmsd = own_kmsd
    kms = kmsd.client()
    assert error_code(lambda: kms.encrypt(KeyId="alias/aws/kmsfs", Plaintext=b"x")) == "NotFoundException"
    with tempfile.TemporaryDirectory(prefix="kmsfs-managed-") as root:
        first = init_default(kmsd, root, "first")
        second = init_default(kmsd, root, "second")
        key = kms.describe_key(KeyId="alias/aws/kmsfs")["KeyMetadata"]
        assert key["KeyManager"] == "AWS" and key["Description"].startswith("Default key that protects my kmsfs data")
        assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
        aliases = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/kmsfs"]
        assert len(aliases) == 1 and aliases[0]["TargetKeyId"] == key["KeyId"]
        # One key for both volumes, made once.
        assert sum(1 for k in kms.list_keys()["Keys"] if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyManager"] == "AWS") == 1
        mount_point = os.path.join(root, "mnt")
        os.mkdir(mount_point)
        with foreground_mount(first, mount_point, env=kmsd.client_environment()):
            with open(os.path.join(mount_point, "file"), "wb") as f:
                f.write(b"under the managed key" * 100)
        with foreground_mount(first, mount_point, env=kmsd.client_environment()):
            with open(os.path.join(mount_point, "file"), "rb") as f:
                assert f.read() == b"under the managed key" * 100
        with foreground_mount(second, mount_point, env=kmsd.client_environment()):
            assert os.listdir(mount_point) == []
        # Outside kmsfs the account may see the key but not use or manage it.
        assert error_code(lambda: kms.encrypt(KeyId="alias/aws/kmsfs", Plaintext=b"x")) == "AccessDeniedException"
        assert error_code(lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")) == "AccessDeniedException"
        assert error_code(lambda: kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy='{"Statement":[]}')) == "AccessDeniedException"
        assert error_code(lambda: kms.disable_key(KeyId=key["KeyId"])) == "AccessDeniedException"
        assert error_code(lambda: kms.schedule_key_deletion(KeyId=key["KeyId"])) == "AccessDeniedException"


def test_only_predefined_service_aliases_are_made_on_first_use(kms):
    assert error_code(lambda: kms.describe_key(KeyId="alias/aws/ebs")) == "NotFoundException"
    assert error_code(lambda: kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])) \
        in ("NotAuthorizedException", "InvalidAliasNameException")


def test_the_via_service_header_is_no_aws_service_call(kmsd):
    """X-Kmsfs-Via-Service is the client's word: it scopes kms:ViaService (the AWS-managed key's
    policy) but does not make a call count as an AWS service's (aws:ViaAWSService,
    kms:GrantIsForAWSResource), which policies use to refuse direct use."""
    kms = kmsd.client()
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "services only", "Effect": "Deny", "Principal": "*", "Action": ["kms:Encrypt", "kms:CreateGrant"], "Resource": "*",
         "Condition": {"Bool": {"aws:ViaAWSService": "false"}}}]})
    key = kms.create_key(Policy=policy)["KeyMetadata"]["KeyId"]
    for extra in ({}, {"X-Kmsfs-Via-Service": "kmsfs"}):
        status, body, _ = kmsd.raw("Encrypt", {"KeyId": key, "Plaintext": "eA=="}, extra_headers=extra)
        assert status == 400 and body["__type"] == "AccessDeniedException", (extra, body)
        status, body, _ = kmsd.raw("CreateGrant", {"KeyId": key, "GranteePrincipal": "arn:aws:iam::111122223333:root",
                                                   "Operations": ["Decrypt"]}, extra_headers=extra)
        assert status == 400 and body["__type"] == "AccessDeniedException", (extra, body)
