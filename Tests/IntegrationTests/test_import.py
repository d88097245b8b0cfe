"""Imported key material through boto3 and the aws CLI against a real kmsd, wrapped outside it
with Python's `cryptography` and with `openssl pkeyutl`, as AWS's documentation shows."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding


def error_code(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def oaep(digest):
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def wrap(parameters, material, algorithm):
    """What a key owner does with GetParametersForImport's answer."""
    public = serialization.load_der_public_key(parameters["PublicKey"])
    digest = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep(digest))
    ephemeral = os.urandom(32)
    return public.encrypt(ephemeral, oaep(digest)) + aes_key_wrap_with_padding(ephemeral, material)


def new_external_key(kms, **kwargs):
    key = kms.create_key(Origin="EXTERNAL", **kwargs)["KeyMetadata"]
    assert key["KeyState"] == "PendingImport" and key["Origin"] == "EXTERNAL"
    return key["KeyId"]


def import_material(kms, key, material, algorithm="RSAES_OAEP_SHA_256", spec="RSA_2048", **kwargs):
    parameters = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)
    return kms.import_key_material(KeyId=key, ImportToken=parameters["ImportToken"],
                                   EncryptedKeyMaterial=wrap(parameters, material, algorithm), **kwargs)


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"])
def test_symmetric_material_imports_with_every_wrapping_algorithm(kms, algorithm):
    key = new_external_key(kms)
    material = os.urandom(32)
    parameters = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_3072")
    assert parameters["ParametersValidTo"] - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(hours=23)
    answer = kms.import_key_material(KeyId=key, ImportToken=parameters["ImportToken"],
                                     EncryptedKeyMaterial=wrap(parameters, material, algorithm),
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert answer["KeyId"].endswith(key)
    described = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert described["KeyState"] == "Enabled" and described["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    blob = kms.encrypt(KeyId=key, Plaintext=b"imported")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"


def test_deleted_material_comes_back_only_as_itself(kms):
    key = new_external_key(kms)
    material = os.urandom(32)
    import_material(kms, key, material)
    blob = kms.encrypt(KeyId=key, Plaintext=b"outlives the material")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert error_code(lambda: kms.decrypt(CiphertextBlob=blob)) == "KMSInvalidStateException"
    assert error_code(lambda: import_material(kms, key, os.urandom(32))) == "IncorrectKeyMaterialException"
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).replace(microsecond=0)
    import_material(kms, key, material, ValidTo=later, ExpirationModel="KEY_MATERIAL_EXPIRES")
    described = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert described["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and described["ValidTo"] == later
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"outlives the material"


def test_import_refusals(kms):
    key = new_external_key(kms)
    other = new_external_key(kms)
    parameters = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    good = wrap(parameters, os.urandom(32), "RSAES_OAEP_SHA_256")
    assert error_code(lambda: kms.import_key_material(KeyId=other, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=good,
                                                      ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")) == "InvalidImportTokenException"
    assert error_code(lambda: kms.import_key_material(KeyId=key, ImportToken=b"\x00" * 64, EncryptedKeyMaterial=good,
                                                      ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")) == "InvalidImportTokenException"
    assert error_code(lambda: kms.import_key_material(KeyId=key, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=good[::-1],
                                                      ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")) == "InvalidCiphertextException"
    short = wrap(parameters, os.urandom(16), "RSAES_OAEP_SHA_256")
    assert error_code(lambda: kms.import_key_material(KeyId=key, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=short,
                                                      ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")) == "IncorrectKeyMaterialException"
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    assert error_code(lambda: kms.import_key_material(KeyId=key, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=good,
                                                      ValidTo=past)) == "ValidationException"
    assert error_code(lambda: kms.import_key_material(KeyId=key, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=good,
                                                      ExpirationModel="KEY_MATERIAL_EXPIRES")) == "ValidationException"
    aws_kms_key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert error_code(lambda: kms.get_parameters_for_import(KeyId=aws_kms_key, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                            WrappingKeySpec="RSA_2048")) == "UnsupportedOperationException"
    assert error_code(lambda: kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_PKCS1_V1_5",
                                                            WrappingKeySpec="RSA_2048")) == "UnsupportedOperationException"
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_hmac_and_key_pair_material_import(kms):
    secret = os.urandom(32)
    mac_key = new_external_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    import_material(kms, mac_key, secret, algorithm="RSAES_OAEP_SHA_256", ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"] == hmac.new(secret, b"m", hashlib.sha256).digest()
    pair = ec.generate_private_key(ec.SECP384R1())
    der = pair.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    sign_key = new_external_key(kms, KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")
    # A key pair is too long for RSA-OAEP alone: AES key wrap carries it.
    import_material(kms, sign_key, der, algorithm="RSA_AES_KEY_WRAP_SHA_256", spec="RSA_4096",
                    ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    signature = kms.sign(KeyId=sign_key, Message=b"m", SigningAlgorithm="ECDSA_SHA_384")["Signature"]
    pair.public_key().verify(signature, b"m", ec.ECDSA(hashes.SHA384()))
    # Material of another curve is not this key's.
    wrong_curve = new_external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    assert error_code(lambda: import_material(kms, wrong_curve, der, algorithm="RSA_AES_KEY_WRAP_SHA_256",
                                              ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")) == "IncorrectKeyMaterialException"


def test_the_aws_cli_and_openssl_import_material(kmsd, tmp_path):
    """The procedure of AWS's documentation, with the real aws CLI and openssl pkeyutl."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=kmsd.access_key, AWS_SECRET_ACCESS_KEY=kmsd.secret_key, AWS_DEFAULT_REGION="us-east-1")
    aws = ["aws", "--endpoint-url", kmsd.endpoint, "kms"]

    def run(*arguments):
        out = subprocess.run([*aws, *arguments], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    key = run("create-key", "--origin", "EXTERNAL")["KeyMetadata"]["KeyId"]
    parameters = run("get-parameters-for-import", "--key-id", key, "--wrapping-algorithm", "RSAES_OAEP_SHA_256",
                     "--wrapping-key-spec", "RSA_2048")
    (tmp_path / "wrapping.der").write_bytes(base64.b64decode(parameters["PublicKey"]))
    (tmp_path / "token.bin").write_bytes(base64.b64decode(parameters["ImportToken"]))
    material = os.urandom(32)
    (tmp_path / "material.bin").write_bytes(material)
    subprocess.run(["openssl", "pkeyutl", "-encrypt", "-in", str(tmp_path / "material.bin"), "-out", str(tmp_path / "encrypted.bin"),
                    "-inkey", str(tmp_path / "wrapping.der"), "-keyform", "DER", "-pubin", "-pkeyopt", "rsa_padding_mode:oaep",
                    "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"], check=True, capture_output=True)
    run("import-key-material", "--key-id", key, "--encrypted-key-material", "fileb://%s" % (tmp_path / "encrypted.bin"),
        "--import-token", "fileb://%s" % (tmp_path / "token.bin"), "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert run("describe-key", "--key-id", key)["KeyMetadata"]["KeyState"] == "Enabled"
    run("delete-imported-key-material", "--key-id", key)
    assert run("describe-key", "--key-id", key)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_several_materials_rotate_on_demand_and_come_back_by_id(kms):
    """ImportType, KeyMaterialId and on-demand rotation of a symmetric key with imported material."""
    key = new_external_key(kms)
    first, second, third = os.urandom(32), os.urandom(32), os.urandom(32)
    id_first = import_material(kms, key, first)["KeyMaterialId"]
    assert len(id_first) == 64 and all(c in "0123456789abcdef" for c in id_first)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] == id_first
    old_blob = kms.encrypt(KeyId=key, Plaintext=b"under the first")["CiphertextBlob"]

    assert error_code(lambda: import_material(kms, key, second, ImportType="NEW_KEY_MATERIAL", KeyMaterialId=id_first)) == "ValidationException"
    id_second = import_material(kms, key, second, ImportType="NEW_KEY_MATERIAL", KeyMaterialDescription="next year's")["KeyMaterialId"]
    assert id_second != id_first
    assert error_code(lambda: import_material(kms, key, second, ImportType="NEW_KEY_MATERIAL")) == "IncorrectKeyMaterialException"
    assert error_code(lambda: import_material(kms, key, third, ImportType="NEW_KEY_MATERIAL")) == "ValidationException"
    materials = {r["KeyMaterialId"]: r for r in kms.list_key_rotations(KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]}
    assert materials[id_first]["KeyMaterialState"] == "CURRENT" and materials[id_first]["ImportState"] == "IMPORTED"
    assert materials[id_second]["KeyMaterialState"] == "PENDING_ROTATION" and materials[id_second]["KeyMaterialDescription"] == "next year's"
    assert kms.list_key_rotations(KeyId=key)["Rotations"] == []

    kms.rotate_key_on_demand(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] == id_second
    rotations = kms.list_key_rotations(KeyId=key)["Rotations"]
    assert [(r["KeyMaterialId"], r["RotationType"]) for r in rotations] == [(id_second, "ON_DEMAND")]
    assert error_code(lambda: kms.rotate_key_on_demand(KeyId=key)) == "ValidationException"
    new_blob = kms.encrypt(KeyId=key, Plaintext=b"under the second")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"under the first"

    # The first material deleted by its ID: the key stays usable; its own ciphertexts wait for it.
    deleted = kms.delete_imported_key_material(KeyId=key, KeyMaterialId=id_first)
    assert deleted["KeyMaterialId"] == id_first
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    assert error_code(lambda: kms.decrypt(CiphertextBlob=old_blob)) == "KMSInvalidStateException"
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"under the second"
    materials = {r["KeyMaterialId"]: r for r in kms.list_key_rotations(KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]}
    assert materials[id_first]["ImportState"] == "PENDING_IMPORT" and materials[id_first]["KeyMaterialState"] == "NON_CURRENT"
    assert error_code(lambda: import_material(kms, key, first, ImportType="EXISTING_KEY_MATERIAL", KeyMaterialId=id_second)) == "IncorrectKeyMaterialException"
    assert error_code(lambda: import_material(kms, key, third, ImportType="EXISTING_KEY_MATERIAL")) == "IncorrectKeyMaterialException"
    assert import_material(kms, key, first, ImportType="EXISTING_KEY_MATERIAL", KeyMaterialId=id_first)["KeyMaterialId"] == id_first
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"under the first"

    # Without its current material the key waits for it.
    kms.delete_imported_key_material(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, key, second)
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"under the second"


def test_asymmetric_imports_take_one_material_and_no_import_type(kms):
    key = kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    private = ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                                  serialization.NoEncryption())
    assert error_code(lambda: import_material(kms, key, private, algorithm="RSA_AES_KEY_WRAP_SHA_256", ImportType="NEW_KEY_MATERIAL")) == "ValidationException"
    import_material(kms, key, private, algorithm="RSA_AES_KEY_WRAP_SHA_256")
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption())
    assert error_code(lambda: import_material(kms, key, other, algorithm="RSA_AES_KEY_WRAP_SHA_256")) == "IncorrectKeyMaterialException"
    assert "CurrentKeyMaterialId" not in kms.describe_key(KeyId=key)["KeyMetadata"]


def test_generated_keys_name_their_materials(kms):
    key = kms.create_key()["KeyMetadata"]
    assert len(key["CurrentKeyMaterialId"]) == 64
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    current = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current != key["CurrentKeyMaterialId"]
    assert [r["KeyMaterialId"] for r in kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]] == [current]
    assert [r["KeyMaterialState"] for r in kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]] \
        == ["NON_CURRENT", "CURRENT"]
