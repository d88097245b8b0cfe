"""Every kmsd operation through boto3 against a real kmsd process: happy paths and AWS errors."""
import base64

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION


def error_type(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_create_describe_list_with_paging(kms):
    created = [kms.create_key(Description="page %d" % i)["KeyMetadata"] for i in range(5)]
    meta = created[0]
    assert meta["AWSAccountId"] == ACCOUNT
    assert meta["Arn"] == "arn:aws:kms:%s:%s:key/%s" % (REGION, ACCOUNT, meta["KeyId"])
    assert meta["KeyState"] == "Enabled" and meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert kms.describe_key(KeyId=meta["Arn"])["KeyMetadata"]["KeyId"] == meta["KeyId"]
    seen, marker = [], None
    while True:
        page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        assert len(page["Keys"]) <= 2
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert {k["KeyId"] for k in created} <= set(seen)
    assert len(seen) == len(set(seen))


def test_errors_carry_aws_types(kms, key):
    cases = [
        (lambda: kms.describe_key(KeyId="11111111-2222-3333-4444-555555555555"), "NotFoundException"),
        (lambda: kms.describe_key(KeyId="alias/does-not-exist"), "NotFoundException"),
        (lambda: kms.list_keys(Marker="bogus"), "InvalidMarkerException"),
        (lambda: kms.generate_data_key(KeyId=key["KeyId"]), "ValidationException"),
        (lambda: kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=6), "ValidationException"),
        (lambda: kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=31), "ValidationException"),
        (lambda: kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=key["KeyId"]), "NotAuthorizedException"),
        (lambda: kms.create_alias(AliasName="no-prefix", TargetKeyId=key["KeyId"]), "ValidationException"),
        (lambda: kms.create_alias(AliasName="alias/my:alias", TargetKeyId=key["KeyId"]), "ValidationException"),
        (lambda: kms.create_alias(AliasName="alias/to-alias", TargetKeyId="alias/other"), "ValidationException"),
        (lambda: kms.revoke_grant(KeyId=key["KeyId"], GrantId="aabbccdd"), "NotFoundException"),
        (lambda: kms.create_key(KeySpec="ML_DSA_44", KeyUsage="SIGN_VERIFY"), "UnsupportedOperationException"),
        (lambda: kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "aws:x", "TagValue": "y"}]), "TagException"),
        (lambda: kms.describe_key(KeyId="arn:aws:kms:us-east-1:999999999999:key/x"), "NotFoundException"),  # no such account here
    ]
    for call, expected in cases:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_type(excinfo) == expected, excinfo.value.response
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert excinfo.value.response["ResponseMetadata"]["RequestId"]


def test_limits_the_sdk_would_refuse_to_send(kmsd, key):
    """boto3 validates these ranges itself; the server must enforce them for clients that don't."""
    import base64
    cases = [
        ("Encrypt", {"KeyId": key["KeyId"], "Plaintext": base64.b64encode(b"x" * 4097).decode()}),
        ("GenerateDataKey", {"KeyId": key["KeyId"], "NumberOfBytes": 1025}),
        ("GenerateDataKey", {"KeyId": key["KeyId"], "NumberOfBytes": 0}),
        ("EnableKeyRotation", {"KeyId": key["KeyId"], "RotationPeriodInDays": 89}),
        ("GenerateRandom", {"NumberOfBytes": 1025}),
        ("ListKeys", {"Limit": 1001}),
    ]
    for target, body in cases:
        status, response, _ = kmsd.raw(target, body)
        assert (status, response["__type"]) == (400, "ValidationException"), (target, body, response)


def test_messages_in_awss_words(kmsd, kms, key):
    """The messages SDK users match on, as AWS words them (AWS-validated cases of a public suite)."""
    for call in [lambda: kms.describe_key(KeyId="not-a-uuid"), lambda: kms.tag_resource(KeyId="unknown", Tags=[])]:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_type(excinfo) == "NotFoundException"
        assert excinfo.value.response["Error"]["Message"].startswith("Invalid keyId ")
    missing = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(ClientError) as excinfo:
        kms.describe_key(KeyId=missing)
    assert excinfo.value.response["Error"]["Message"] == "Key 'arn:aws:kms:%s:%s:key/%s' does not exist" % (REGION, ACCOUNT, missing)
    # A plaintext is never echoed, and the bound it crossed is named.
    for plaintext, bound in [(b"", "greater than or equal to 1"), (b"x" * 4097, "less than or equal to 4096")]:
        status, response, _ = kmsd.raw("Encrypt", {"KeyId": key["KeyId"], "Plaintext": base64.b64encode(plaintext).decode()})
        assert (status, response["__type"]) == (400, "ValidationException")
        assert response["message"] == ("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
                                       "Member must have length " + bound), response
    status, response, _ = kmsd.raw("CreateGrant", {"KeyId": key["KeyId"], "GranteePrincipal": "arn:aws:iam::%s:root" % ACCOUNT,
                                                   "Operations": ["DECRYPT"]})
    assert (status, response["__type"]) == (400, "ValidationException")
    assert "Value '[DECRYPT]' at 'operations'" in response["message"] and "enum value set: [" in response["message"]


def test_aliases_in_every_key_id_position(kms, key):
    kms.create_alias(AliasName="alias/everywhere", TargetKeyId=key["KeyId"])
    alias_arn = "arn:aws:kms:%s:%s:alias/everywhere" % (REGION, ACCOUNT)
    for name in [key["KeyId"], key["Arn"], "alias/everywhere", alias_arn]:
        assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
        blob = kms.encrypt(KeyId=name, Plaintext=b"where")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob, KeyId=name)["Plaintext"] == b"where"
        data_key = kms.generate_data_key(KeyId=name, KeySpec="AES_256")
        assert len(data_key["Plaintext"]) == 32
        moved = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=name, SourceKeyId=name)
        assert moved["KeyId"] == key["Arn"] and moved["SourceKeyId"] == key["Arn"]
        assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"where"
    aliases = kms.list_aliases(KeyId=key["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/everywhere"]
    assert aliases[0]["AliasArn"] == alias_arn and aliases[0]["TargetKeyId"] == key["KeyId"]
    other = kms.create_key()["KeyMetadata"]
    kms.update_alias(AliasName="alias/everywhere", TargetKeyId=other["KeyId"])
    assert kms.describe_key(KeyId="alias/everywhere")["KeyMetadata"]["KeyId"] == other["KeyId"]
    kms.delete_alias(AliasName="alias/everywhere")
    with pytest.raises(ClientError) as excinfo:
        kms.describe_key(KeyId="alias/everywhere")
    assert error_type(excinfo) == "NotFoundException"
    # Management calls take key IDs and ARNs, not aliases.
    kms.create_alias(AliasName="alias/manage", TargetKeyId=key["KeyId"])
    with pytest.raises(ClientError) as excinfo:
        kms.disable_key(KeyId="alias/manage")
    assert error_type(excinfo) == "NotFoundException"


def test_data_keys_decrypt_only_with_their_context(kms, key):
    context = {"volume": "v-1", "file": "0011"}
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext=context)
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)["Plaintext"] == data_key["Plaintext"]
    for wrong in [{}, {"volume": "v-1"}, {"volume": "v-1", "file": "0012"}, {"volume": "v-1f", "ile": "0011"}]:
        with pytest.raises(ClientError) as excinfo:
            kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=wrong)
        assert error_type(excinfo) == "InvalidCiphertextException"
    sealed_only = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=64, EncryptionContext=context)
    assert "Plaintext" not in sealed_only
    assert len(kms.decrypt(CiphertextBlob=sealed_only["CiphertextBlob"], EncryptionContext=context)["Plaintext"]) == 64


def test_disabled_keys_refuse_crypto_and_deletion_lifecycle(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"later")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    for call in [lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
                 lambda: kms.decrypt(CiphertextBlob=blob),
                 lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128")]:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_type(excinfo) == "DisabledException"
    kms.enable_key(KeyId=key["KeyId"])
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion" and described["DeletionDate"] == scheduled["DeletionDate"]
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=blob)
    assert error_type(excinfo) == "KMSInvalidStateException"
    assert kms.cancel_key_deletion(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"later"


def test_rotation_through_list_key_rotations(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before rotation")["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 90 and "NextRotationDate" in status
    for _ in range(3):
        assert kms.rotate_key_on_demand(KeyId=key["KeyId"])["KeyId"] == key["KeyId"]
    rotations = kms.list_key_rotations(KeyId=key["KeyId"], Limit=2)
    assert len(rotations["Rotations"]) == 2 and rotations["Truncated"]
    rest = kms.list_key_rotations(KeyId=key["KeyId"], Marker=rotations["NextMarker"])
    assert len(rest["Rotations"]) == 1 and not rest["Truncated"]
    assert all(r["RotationType"] == "ON_DEMAND" for r in rotations["Rotations"] + rest["Rotations"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before rotation"
    kms.disable_key_rotation(KeyId=key["KeyId"])
    assert not kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]


def test_tags_description_policy_random(kms, key):
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "team", "TagValue": "storage"}, {"TagKey": "env", "TagValue": "ci"}])
    page = kms.list_resource_tags(KeyId=key["KeyId"], Limit=1)
    assert page["Tags"] == [{"TagKey": "env", "TagValue": "ci"}] and page["Truncated"]
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["env"])
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "storage"}]
    kms.update_key_description(KeyId=key["KeyId"], Description="renamed")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "renamed"
    assert "kms:*" in kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
    random = kms.generate_random(NumberOfBytes=48)["Plaintext"]
    assert len(random) == 48 and random != kms.generate_random(NumberOfBytes=48)["Plaintext"]


def test_external_origin_key_is_pending_import(kms):
    meta = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and meta["Origin"] == "EXTERNAL"
    with pytest.raises(ClientError) as excinfo:
        kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"x")
    assert error_type(excinfo) == "KMSInvalidStateException"


def test_responses_carry_request_ids(kmsd):
    status, body, headers = kmsd.raw("ListKeys", {})
    assert status == 200 and "Keys" in body
    assert len(headers["x-amzn-RequestId"]) == 36
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    status, body, _ = kmsd.raw("EnableKey", {"KeyId": kmsd.client().create_key()["KeyMetadata"]["KeyId"]})
    assert status == 200 and body == {}


def test_key_last_usage_counts_cryptographic_calls_only(kms, key):
    before = kms.get_key_last_usage(KeyId=key["KeyId"])
    assert "KeyLastUsage" not in before and before["KeyId"] == key["Arn"]
    assert before["TrackingStartDate"] <= before["KeyCreationDate"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"used")["CiphertextBlob"]
    used = kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]
    assert used["Operation"] == "Encrypt" and used["KmsRequestId"]
    kms.describe_key(KeyId=key["KeyId"])  # not a use
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"wrong": "context"})  # a failed use is not one
    assert kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]["Operation"] == "Encrypt"
    kms.decrypt(CiphertextBlob=blob)
    assert kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]["Operation"] == "Decrypt"


def test_custom_key_stores_and_multi_region_answer_as_aws_where_none_exist(kms, key):
    """A kmsd with no PKCS#11 module and no store yet: every operation answers as AWS does where
    there are none — after authorization — and the multi-Region operations on a single-Region key
    likewise."""
    assert kms.describe_custom_key_stores()["CustomKeyStores"] == []
    for call, expected in [
        (lambda: kms.describe_custom_key_stores(CustomKeyStoreId="cks-1234567890abcdef0"), "CustomKeyStoreNotFoundException"),
        (lambda: kms.connect_custom_key_store(CustomKeyStoreId="cks-1234567890abcdef0"), "CustomKeyStoreNotFoundException"),
        (lambda: kms.delete_custom_key_store(CustomKeyStoreId="cks-1234567890abcdef0"), "CustomKeyStoreNotFoundException"),
        (lambda: kms.create_custom_key_store(CustomKeyStoreName="hsm", CloudHsmClusterId="cluster-abcdefghijk",
                                             TrustAnchorCertificate="x", KeyStorePassword="password"), "UnsupportedOperationException"),
        (lambda: kms.create_key(CustomKeyStoreId="cks-1234567890abcdef0", Origin="AWS_CLOUDHSM"), "CustomKeyStoreNotFoundException"),
        (lambda: kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion="eu-west-1"), "UnsupportedOperationException"),
        (lambda: kms.update_primary_region(KeyId=key["KeyId"], PrimaryRegion="eu-west-1"), "UnsupportedOperationException"),
    ]:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_type(excinfo) == expected, excinfo.value.response
