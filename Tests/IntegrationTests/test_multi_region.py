"""Multi-Region keys in one kmsd, through boto3 clients of two Regions: an mrk- key replicated into
another Region decrypts there what the primary encrypted (and the other way), keeps its own
enabled state, policy, tags and aliases, follows the primary's rotation, swaps roles with
UpdatePrimaryRegion, survives a restart; what AWS refuses is refused with AWS's error names."""
import json
import re
import subprocess

import pytest

from conftest import ACCOUNT, KMSD

PRIMARY, OTHER = "us-east-1", "eu-west-1"


def test_replicas_share_material_and_nothing_else(own_kmsd):
    east, west = own_kmsd.client(region=PRIMARY), own_kmsd.client(region=OTHER)
    created = east.create_key(MultiRegion=True, Description="global")["KeyMetadata"]
    key = created["KeyId"]
    assert key.startswith("mrk-") and created["MultiRegion"]
    assert created["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert created["MultiRegionConfiguration"]["ReplicaKeys"] == []

    answer = east.replicate_key(KeyId=key, ReplicaRegion=OTHER, Description="in Europe", Tags=[{"TagKey": "site", "TagValue": "eu"}])
    replica = answer["ReplicaKeyMetadata"]
    assert replica["Arn"] == created["Arn"].replace(PRIMARY, OTHER) and replica["KeyState"] == "Enabled"
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": created["Arn"], "Region": PRIMARY}
    assert answer["ReplicaTags"] == [{"TagKey": "site", "TagValue": "eu"}]
    described = east.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]
    assert described["ReplicaKeys"] == [{"Arn": replica["Arn"], "Region": OTHER}]

    # Material shared: each Region decrypts the other's ciphertext.
    sealed = east.encrypt(KeyId=key, Plaintext=b"made in the east", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})["Plaintext"] == b"made in the east"
    data_key = west.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert east.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]

    # Not shared: enabled state, tags, description, aliases.
    west.disable_key(KeyId=key)
    with pytest.raises(west.exceptions.DisabledException):
        west.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})
    assert east.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})["Plaintext"] == b"made in the east"
    west.enable_key(KeyId=key)
    assert east.list_resource_tags(KeyId=key)["Tags"] == []
    assert east.describe_key(KeyId=key)["KeyMetadata"]["Description"] == "global"
    east.create_alias(AliasName="alias/global", TargetKeyId=key)
    assert not [a for a in west.list_aliases()["Aliases"] if a["AliasName"] == "alias/global"]

    # Rotation is the primary's, and reaches the replica.
    east.rotate_key_on_demand(KeyId=key)
    rotated = east.encrypt(KeyId=key, Plaintext=b"after rotation")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=rotated)["Plaintext"] == b"after rotation"
    with pytest.raises(west.exceptions.UnsupportedOperationException):
        west.rotate_key_on_demand(KeyId=key)
    east.enable_key_rotation(KeyId=key)
    assert west.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]

    # Refusals, as AWS names them.
    with pytest.raises(east.exceptions.AlreadyExistsException):
        east.replicate_key(KeyId=key, ReplicaRegion=OTHER)
    with pytest.raises(east.exceptions.ClientError) as same:
        east.replicate_key(KeyId=key, ReplicaRegion=PRIMARY)
    assert same.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(west.exceptions.UnsupportedOperationException):
        west.replicate_key(KeyId=key, ReplicaRegion="ap-south-1")
    single = east.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(east.exceptions.UnsupportedOperationException):
        east.replicate_key(KeyId=single, ReplicaRegion=OTHER)
    with pytest.raises(east.exceptions.NotFoundException):
        east.update_primary_region(KeyId=key, PrimaryRegion="ap-south-1")

    # The replica becomes the primary; the old primary replicates no more.
    east.update_primary_region(KeyId=key, PrimaryRegion=OTHER)
    assert west.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert east.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    with pytest.raises(east.exceptions.UnsupportedOperationException):
        east.replicate_key(KeyId=key, ReplicaRegion="ap-south-1")
    west.replicate_key(KeyId=key, ReplicaRegion="ap-south-1")

    # All of it survives a restart.
    own_kmsd.stop()
    own_kmsd.log = open(own_kmsd.log_path, "a")
    own_kmsd.start()
    south = own_kmsd.client(region="ap-south-1")
    assert south.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})["Plaintext"] == b"made in the east"
    configuration = own_kmsd.client(region=PRIMARY).describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]
    assert configuration["PrimaryKey"]["Region"] == OTHER and sorted(r["Region"] for r in configuration["ReplicaKeys"]) == ["ap-south-1", PRIMARY]


def test_a_primary_with_replicas_waits_for_them(own_kmsd):
    east, west = own_kmsd.client(region=PRIMARY), own_kmsd.client(region=OTHER)
    key = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    east.replicate_key(KeyId=key, ReplicaRegion=OTHER)
    assert east.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)["KeyState"] == "PendingReplicaDeletion"
    assert east.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingReplicaDeletion"
    # Waiting for its replicas, the primary takes no changes, nor a move of the primary Region.
    with pytest.raises(east.exceptions.KMSInvalidStateException):
        east.tag_resource(KeyId=key, Tags=[{"TagKey": "t", "TagValue": "v"}])
    with pytest.raises(east.exceptions.KMSInvalidStateException):
        east.update_primary_region(KeyId=key, PrimaryRegion=OTHER)
    assert west.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)["KeyState"] == "PendingDeletion"
    east.cancel_key_deletion(KeyId=key)
    assert east.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"


def test_other_accounts_cannot_replicate_and_imported_material_is_refused(own_kmsd):
    """ReplicateKey and UpdatePrimaryRegion are not for other accounts, whatever a key policy
    grants (AWS: no cross-account use): a replica would be made under the caller's policy."""
    east = own_kmsd.client(region=PRIMARY)
    created = subprocess.run([KMSD, "admin", "create-access-key", "--store", own_kmsd.store, "--account", "222233334444"],
                             check=True, capture_output=True, text=True).stdout
    other = own_kmsd.client(re.search(r"access key id: (\S+)", created).group(1), re.search(r"secret access key: (\S+)", created).group(1),
                            region=PRIMARY)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "other", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222233334444:root"},
         "Action": ["kms:ReplicateKey", "kms:UpdatePrimaryRegion", "kms:DescribeKey"], "Resource": "*"}]}
    key = east.create_key(MultiRegion=True, Policy=json.dumps(policy))["KeyMetadata"]
    for call in (lambda: other.replicate_key(KeyId=key["Arn"], ReplicaRegion=OTHER),
                 lambda: other.update_primary_region(KeyId=key["Arn"], PrimaryRegion=OTHER)):
        with pytest.raises(other.exceptions.ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert east.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"] == []
    with pytest.raises(east.exceptions.UnsupportedOperationException):
        east.create_key(MultiRegion=True, Origin="EXTERNAL")
    with pytest.raises(east.exceptions.ClientError) as garbage:
        east.replicate_key(KeyId=key["KeyId"], ReplicaRegion="us-east-\u0663")
    assert garbage.value.response["Error"]["Code"] == "ValidationException"
