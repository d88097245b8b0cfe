"""Asymmetric and HMAC keys through boto3 against a real kmsd, checked against what is made
outside it: signatures verified with Python's `cryptography` and `openssl`, RSA-OAEP ciphertexts
made with the public key decrypted inside, HMACs equal to Python's `hmac`, ECDH secrets equal
to the peer's, data key pairs whose halves fit."""
import base64
import hashlib
import hmac
import os
import subprocess

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils


def error_code(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


HASHES = {"SHA_256": hashes.SHA256(), "SHA_384": hashes.SHA384(), "SHA_512": hashes.SHA512()}
DIGESTS = {"SHA_256": hashlib.sha256, "SHA_384": hashlib.sha384, "SHA_512": hashlib.sha512}

SIGNING = [
    ("RSA_2048", "RSASSA_PSS_SHA_256"), ("RSA_3072", "RSASSA_PSS_SHA_384"), ("RSA_4096", "RSASSA_PSS_SHA_512"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"), ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384"), ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_NIST_P384", "ECDSA_SHA_384"), ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"), ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512"),
]


def verify_outside(public_der, algorithm, message, signature):
    """Raises unless `signature` is valid for `message` by `cryptography`'s reckoning."""
    key = serialization.load_der_public_key(public_der)
    if algorithm == "ED25519_SHA_512":
        key.verify(signature, message)
        return
    digest = HASHES[algorithm[-7:]]
    if algorithm.startswith("RSASSA_PSS"):
        key.verify(signature, message, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    elif algorithm.startswith("RSASSA_PKCS1"):
        key.verify(signature, message, padding.PKCS1v15(), digest)
    else:
        key.verify(signature, message, ec.ECDSA(digest))


@pytest.mark.parametrize("spec,algorithm", SIGNING)
def test_signatures_verify_outside_and_inside(kms, spec, algorithm):
    key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert key["KeySpec"] == spec and key["KeyUsage"] == "SIGN_VERIFY" and algorithm in key["SigningAlgorithms"]
    assert "EncryptionAlgorithms" not in key
    public = kms.get_public_key(KeyId=key["KeyId"])
    assert public["KeySpec"] == spec and algorithm in public["SigningAlgorithms"] and public["KeyId"] == key["Arn"]
    message = os.urandom(300)
    signed = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=algorithm)
    assert signed["KeyId"] == key["Arn"] and signed["SigningAlgorithm"] == algorithm
    verify_outside(public["PublicKey"], algorithm, message, signed["Signature"])
    assert kms.verify(KeyId=key["KeyId"], Message=message, Signature=signed["Signature"], SigningAlgorithm=algorithm)["SignatureValid"]
    tampered = bytes([message[0] ^ 1]) + message[1:]
    assert error_code(lambda: kms.verify(KeyId=key["KeyId"], Message=tampered, Signature=signed["Signature"],
                                         SigningAlgorithm=algorithm)) == "KMSInvalidSignatureException"
    if algorithm != "ED25519_SHA_512":
        # DIGEST: the caller hashes; the signature is the same kind as over the message.
        digest = DIGESTS[algorithm[-7:]](message).digest()
        by_digest = kms.sign(KeyId=key["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)["Signature"]
        verify_outside(public["PublicKey"], algorithm, message, by_digest)
        assert error_code(lambda: kms.sign(KeyId=key["KeyId"], Message=digest[:-1], MessageType="DIGEST",
                                           SigningAlgorithm=algorithm)) == "ValidationException"
    else:
        assert error_code(lambda: kms.sign(KeyId=key["KeyId"], Message=b"x" * 64, MessageType="DIGEST",
                                           SigningAlgorithm=algorithm)) == "ValidationException"


def test_openssl_verifies_an_ecdsa_signature(kms, tmp_path):
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    (tmp_path / "public.der").write_bytes(kms.get_public_key(KeyId=key)["PublicKey"])
    (tmp_path / "message").write_bytes(b"signed by kmsd")
    (tmp_path / "signature").write_bytes(kms.sign(KeyId=key, Message=b"signed by kmsd", SigningAlgorithm="ECDSA_SHA_256")["Signature"])
    result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "public.der"), "-keyform", "DER",
                             "-signature", str(tmp_path / "signature"), str(tmp_path / "message")], capture_output=True, text=True)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("spec,limits", [("RSA_2048", (214, 190)), ("RSA_3072", (342, 318)), ("RSA_4096", (470, 446))])
def test_rsa_oaep_round_trips_with_the_world(kms, spec, limits):
    key = kms.create_key(KeySpec=spec, KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    assert key["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    for algorithm, digest, limit in [("RSAES_OAEP_SHA_1", hashes.SHA1(), limits[0]), ("RSAES_OAEP_SHA_256", hashes.SHA256(), limits[1])]:
        secret = os.urandom(limit)
        outside = public.encrypt(secret, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None))
        opened = kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=outside, EncryptionAlgorithm=algorithm)
        assert opened["Plaintext"] == secret and opened["EncryptionAlgorithm"] == algorithm
        inside = kms.encrypt(KeyId=key["KeyId"], Plaintext=secret, EncryptionAlgorithm=algorithm)["CiphertextBlob"]
        assert kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=inside, EncryptionAlgorithm=algorithm)["Plaintext"] == secret
        assert error_code(lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=secret + b"x", EncryptionAlgorithm=algorithm)) == "ValidationException"
    # The wrong algorithm, a context, the symmetric default, a damaged ciphertext.
    assert error_code(lambda: kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=outside, EncryptionAlgorithm="RSAES_OAEP_SHA_1")) == "InvalidCiphertextException"
    assert error_code(lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256",
                                          EncryptionContext={"a": "b"})) == "ValidationException"
    assert error_code(lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")) == "InvalidKeyUsageException"
    assert error_code(lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")) == "InvalidKeyUsageException"
    # ReEncrypt in both directions, the plaintext staying inside.
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    moved = kms.re_encrypt(CiphertextBlob=outside, SourceKeyId=key["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                           DestinationKeyId=symmetric, DestinationEncryptionContext={"to": "aes"})
    assert moved["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256" and moved["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"to": "aes"})["Plaintext"] == secret
    back = kms.re_encrypt(CiphertextBlob=moved["CiphertextBlob"], SourceEncryptionContext={"to": "aes"}, DestinationKeyId=key["KeyId"],
                          DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    assert kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=back, EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == secret
    assert error_code(lambda: kms.re_encrypt(CiphertextBlob=outside, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                                             DestinationKeyId=symmetric)) == "ValidationException"


@pytest.mark.parametrize("spec,algorithm,digest", [("HMAC_224", "HMAC_SHA_224", hashlib.sha224), ("HMAC_256", "HMAC_SHA_256", hashlib.sha256),
                                                   ("HMAC_384", "HMAC_SHA_384", hashlib.sha384), ("HMAC_512", "HMAC_SHA_512", hashlib.sha512)])
def test_hmac_keys(kms, spec, algorithm, digest):
    key = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert key["MacAlgorithms"] == [algorithm] and "EncryptionAlgorithms" not in key
    message = os.urandom(100)
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=algorithm)["Mac"]
    assert len(mac) == digest().digest_size
    assert kms.verify_mac(KeyId=key["KeyId"], Message=message, Mac=mac, MacAlgorithm=algorithm)["MacValid"]
    assert error_code(lambda: kms.verify_mac(KeyId=key["KeyId"], Message=message + b"x", Mac=mac,
                                             MacAlgorithm=algorithm)) == "KMSInvalidMacException"
    other = "HMAC_SHA_512" if algorithm != "HMAC_SHA_512" else "HMAC_SHA_256"
    assert error_code(lambda: kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=other)) == "InvalidKeyUsageException"
    assert error_code(lambda: kms.get_public_key(KeyId=key["KeyId"])) == "UnsupportedOperationException"
    assert error_code(lambda: kms.enable_key_rotation(KeyId=key["KeyId"])) == "UnsupportedOperationException"


def test_seeded_material_matches_pythons_hmac_and_signs_for_its_public_key(tmp_path):
    """Keys seeded with known material: kmsd's HMAC is Python's hmac, and a seeded key pair's
    signatures verify with the public half of the pair it was given."""
    from conftest import ACCOUNT, Kmsd
    secret = os.urandom(48)
    pair = ec.generate_private_key(ec.SECP256R1())
    der = pair.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    seed = tmp_path / "seed.yaml"
    seed.write_text("""accounts:
  - id: "%s"
    keys:
      - aliases: [alias/seeded-hmac]
        spec: HMAC_384
        material: %s
      - aliases: [alias/seeded-pair]
        spec: ECC_NIST_P256
        usage: SIGN_VERIFY
        material: %s
""" % (ACCOUNT, base64.b64encode(secret).decode(), base64.b64encode(der).decode()))
    server = Kmsd(str(tmp_path), extra_args=["--seed", str(seed)])
    try:
        kms = server.client()
        message = b"known material"
        mac = kms.generate_mac(KeyId="alias/seeded-hmac", Message=message, MacAlgorithm="HMAC_SHA_384")["Mac"]
        assert mac == hmac.new(secret, message, hashlib.sha384).digest()
        assert kms.describe_key(KeyId="alias/seeded-pair")["KeyMetadata"]["Origin"] == "EXTERNAL"
        signature = kms.sign(KeyId="alias/seeded-pair", Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        pair.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
        assert kms.get_public_key(KeyId="alias/seeded-pair")["PublicKey"] == pair.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    finally:
        server.stop()
    # The seeded secrets are sealed: neither is in the store or the log in the clear.
    for name in os.listdir(tmp_path):
        path = tmp_path / name
        if path.is_file():
            data = path.read_bytes()
            assert secret not in data and der not in data, name


@pytest.mark.parametrize("spec,curve", [("ECC_NIST_P256", ec.SECP256R1()), ("ECC_NIST_P384", ec.SECP384R1()), ("ECC_NIST_P521", ec.SECP521R1())])
def test_ecdh_agrees_with_the_peer(kms, spec, curve):
    key = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    assert key["KeyAgreementAlgorithms"] == ["ECDH"]
    ours = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    peer = ec.generate_private_key(curve)
    peer_der = peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    derived = kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
    assert derived["SharedSecret"] == peer.exchange(ec.ECDH(), ours) and derived["KeyOrigin"] == "AWS_KMS"
    wrong = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(serialization.Encoding.DER,
                                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert error_code(lambda: kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=wrong)) == "ValidationException"
    assert error_code(lambda: kms.sign(KeyId=key["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256")) == "InvalidKeyUsageException"


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"])
def test_data_key_pairs_fit_together(kms, key, spec):
    pair = kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext={"purpose": "test"})
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    public = serialization.load_der_public_key(pair["PublicKey"])
    assert private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == pair["PublicKey"]
    opened = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext={"purpose": "test"})["Plaintext"]
    assert opened == pair["PrivateKeyPlaintext"]
    if isinstance(public, rsa.RSAPublicKey):
        ciphertext = public.encrypt(b"to the pair", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        assert private.decrypt(ciphertext, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)) == b"to the pair"
    without = kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in without and without["KeyPairSpec"] == spec


def test_the_spec_and_usage_matrix(kms):
    """What CreateKey accepts, as AWS's table has it; ML-DSA-44 (not in swift-crypto) is refused plainly."""
    valid = {"SYMMETRIC_DEFAULT": ["ENCRYPT_DECRYPT"], "RSA_2048": ["ENCRYPT_DECRYPT", "SIGN_VERIFY"],
             "ECC_NIST_P256": ["SIGN_VERIFY", "KEY_AGREEMENT"], "ECC_SECG_P256K1": ["SIGN_VERIFY"],
             "ECC_NIST_EDWARDS25519": ["SIGN_VERIFY"], "HMAC_256": ["GENERATE_VERIFY_MAC"],
             "SM2": ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT"], "ML_DSA_65": ["SIGN_VERIFY"]}
    usages = ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"]
    for spec, allowed in valid.items():
        for usage in usages:
            if usage in allowed:
                assert kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyUsage"] == usage
            else:
                assert error_code(lambda: kms.create_key(KeySpec=spec, KeyUsage=usage)) == "ValidationException", (spec, usage)
    for spec, usage in [("ML_DSA_44", "SIGN_VERIFY")]:
        assert error_code(lambda: kms.create_key(KeySpec=spec, KeyUsage=usage)) == "UnsupportedOperationException"
    signing = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    assert error_code(lambda: kms.sign(KeyId=signing, Message=b"x", SigningAlgorithm="ECDSA_SHA_256")) == "InvalidKeyUsageException"
    assert error_code(lambda: kms.encrypt(KeyId=signing, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")) == "InvalidKeyUsageException"
    assert error_code(lambda: kms.rotate_key_on_demand(KeyId=signing)) == "UnsupportedOperationException"
    ed = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    assert error_code(lambda: kms.sign(KeyId=ed, Message=b"x", SigningAlgorithm="ED25519_PH_SHA_512")) == "UnsupportedOperationException"


def test_asymmetric_keys_survive_a_restart(own_kmsd):
    kms = own_kmsd.client()
    key = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=key)["PublicKey"]
    ml_dsa = kms.create_key(KeySpec="ML_DSA_65", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    ml_dsa_public = kms.get_public_key(KeyId=ml_dsa)["PublicKey"]
    own_kmsd.stop()
    from conftest import Kmsd  # noqa: F401 (the same store, served again)
    import subprocess as sp
    from conftest import KMSD
    process = sp.Popen([KMSD, "serve", "--store", own_kmsd.store, "--listen", "tcp://127.0.0.1:%d" % own_kmsd.port],
                       stdout=sp.PIPE, stderr=sp.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "kmsd: ready" in line:
                break
        again = own_kmsd.client()
        assert again.get_public_key(KeyId=key)["PublicKey"] == public
        signature = again.sign(KeyId=key, Message=b"after restart", SigningAlgorithm="ECDSA_SHA_384")["Signature"]
        verify_outside(public, "ECDSA_SHA_384", b"after restart", signature)
        # An ML-DSA key comes back from its sealed seed as the same key.
        assert again.get_public_key(KeyId=ml_dsa)["PublicKey"] == ml_dsa_public
        signature = again.sign(KeyId=ml_dsa, Message=b"after restart", SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
        serialization.load_der_public_key(ml_dsa_public).verify(signature, b"after restart")
    finally:
        process.terminate()
        process.wait(timeout=30)
    # The private key is sealed: its DER is nowhere in the store in the clear.
    with open(own_kmsd.store, "rb") as f:
        store = f.read()
    assert b"BEGIN" not in store


def test_the_aws_cli_drives_every_new_operation(kmsd, tmp_path):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=kmsd.access_key, AWS_SECRET_ACCESS_KEY=kmsd.secret_key, AWS_DEFAULT_REGION="us-east-1")

    def aws(*arguments):
        out = subprocess.run(["aws", "--endpoint-url", kmsd.endpoint, "kms", *arguments], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        import json
        return json.loads(out.stdout)

    (tmp_path / "message").write_bytes(b"by the cli")
    signer = aws("create-key", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signature = aws("sign", "--key-id", signer, "--message", "fileb://%s" % (tmp_path / "message"),
                    "--signing-algorithm", "ECDSA_SHA_256")["Signature"]
    (tmp_path / "signature").write_bytes(base64.b64decode(signature))
    assert aws("verify", "--key-id", signer, "--message", "fileb://%s" % (tmp_path / "message"), "--signature",
               "fileb://%s" % (tmp_path / "signature"), "--signing-algorithm", "ECDSA_SHA_256")["SignatureValid"]
    public = base64.b64decode(aws("get-public-key", "--key-id", signer)["PublicKey"])
    verify_outside(public, "ECDSA_SHA_256", b"by the cli", base64.b64decode(signature))
    mac_key = aws("create-key", "--key-spec", "HMAC_512", "--key-usage", "GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = aws("generate-mac", "--key-id", mac_key, "--message", "fileb://%s" % (tmp_path / "message"), "--mac-algorithm", "HMAC_SHA_512")["Mac"]
    (tmp_path / "mac").write_bytes(base64.b64decode(mac))
    assert aws("verify-mac", "--key-id", mac_key, "--message", "fileb://%s" % (tmp_path / "message"), "--mac", "fileb://%s" % (tmp_path / "mac"),
               "--mac-algorithm", "HMAC_SHA_512")["MacValid"]
    symmetric = aws("create-key")["KeyMetadata"]["KeyId"]
    pair = aws("generate-data-key-pair", "--key-id", symmetric, "--key-pair-spec", "ECC_NIST_P384")
    assert serialization.load_der_private_key(base64.b64decode(pair["PrivateKeyPlaintext"]), password=None)
    agreeing = aws("create-key", "--key-spec", "ECC_NIST_P256", "--key-usage", "KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    peer = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "peer.der").write_bytes(peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    shared = aws("derive-shared-secret", "--key-id", agreeing, "--key-agreement-algorithm", "ECDH", "--public-key",
                 "fileb://%s" % (tmp_path / "peer.der"))["SharedSecret"]
    ours = serialization.load_der_public_key(base64.b64decode(aws("get-public-key", "--key-id", agreeing)["PublicKey"]))
    assert base64.b64decode(shared) == peer.exchange(ec.ECDH(), ours)
    without = aws("generate-data-key-pair-without-plaintext", "--key-id", symmetric, "--key-pair-spec", "SM2")
    assert "PrivateKeyPlaintext" not in without and without["KeyPairSpec"] == "SM2"
    aws("rotate-key-on-demand", "--key-id", symmetric)
    materials = aws("list-key-rotations", "--key-id", symmetric, "--include-key-material", "ALL_KEY_MATERIAL")["Rotations"]
    assert [m["KeyMaterialState"] for m in materials] == ["NON_CURRENT", "CURRENT"]
    assert aws("describe-key", "--key-id", symmetric)["KeyMetadata"]["CurrentKeyMaterialId"] == materials[-1]["KeyMaterialId"]
    assert aws("get-key-last-usage", "--key-id", symmetric)["KeyLastUsage"]["Operation"] == "GenerateDataKeyPairWithoutPlaintext"
    ml_dsa = aws("create-key", "--key-spec", "ML_DSA_65", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signed = aws("sign", "--key-id", ml_dsa, "--message", "fileb://%s" % (tmp_path / "message"), "--signing-algorithm", "ML_DSA_SHAKE_256")
    serialization.load_der_public_key(base64.b64decode(aws("get-public-key", "--key-id", ml_dsa)["PublicKey"])).verify(
        base64.b64decode(signed["Signature"]), (tmp_path / "message").read_bytes())


def write_pem_public(path, der):
    with open(path, "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der).decode() + "-----END PUBLIC KEY-----\n")


def test_sm2_signs_encrypts_and_agrees_with_openssl(kms, tmp_path):
    """SM2 (GB/T 32918) as AWS serves it: SM2DSA over SM3 with the default distinguishing ID,
    SM2PKE, ECDH on the SM2 curve, SM2 data key pairs — checked against `openssl`."""
    signer = kms.create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert signer["SigningAlgorithms"] == ["SM2DSA"]
    public = kms.get_public_key(KeyId=signer["KeyId"])
    write_pem_public(tmp_path / "sign.pub", public["PublicKey"])
    (tmp_path / "msg").write_bytes(b"a message for SM2DSA")
    signature = kms.sign(KeyId=signer["KeyId"], Message=b"a message for SM2DSA", SigningAlgorithm="SM2DSA")["Signature"]
    (tmp_path / "sig").write_bytes(signature)
    checked = subprocess.run(["openssl", "dgst", "-sm3", "-verify", str(tmp_path / "sign.pub"), "-sigopt", "distid:1234567812345678",
                              "-signature", str(tmp_path / "sig"), str(tmp_path / "msg")], capture_output=True, text=True)
    assert checked.returncode == 0 and "Verified OK" in checked.stdout, checked.stderr
    assert kms.verify(KeyId=signer["KeyId"], Message=b"a message for SM2DSA", Signature=signature, SigningAlgorithm="SM2DSA")["SignatureValid"]
    assert error_code(lambda: kms.verify(KeyId=signer["KeyId"], Message=b"another message", Signature=signature,
                                         SigningAlgorithm="SM2DSA")) == "KMSInvalidSignatureException"
    # A signature openssl makes with its own key does not verify under kmsd's.
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "other.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "dgst", "-sm3", "-sign", str(tmp_path / "other.pem"), "-sigopt", "distid:1234567812345678",
                    "-out", str(tmp_path / "othersig"), str(tmp_path / "msg")], check=True, capture_output=True)
    assert error_code(lambda: kms.verify(KeyId=signer["KeyId"], Message=b"a message for SM2DSA", Signature=(tmp_path / "othersig").read_bytes(),
                                         SigningAlgorithm="SM2DSA")) == "KMSInvalidSignatureException"
    assert error_code(lambda: kms.sign(KeyId=signer["KeyId"], Message=b"short", MessageType="DIGEST", SigningAlgorithm="SM2DSA")) == "ValidationException"

    encrypter = kms.create_key(KeySpec="SM2", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    assert encrypter["EncryptionAlgorithms"] == ["SM2PKE"]
    write_pem_public(tmp_path / "enc.pub", kms.get_public_key(KeyId=encrypter["KeyId"])["PublicKey"])
    (tmp_path / "plain").write_bytes(b"sealed outside, opened inside")
    subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "enc.pub"), "-in", str(tmp_path / "plain"),
                    "-out", str(tmp_path / "cipher")], check=True, capture_output=True)
    assert kms.decrypt(KeyId=encrypter["KeyId"], CiphertextBlob=(tmp_path / "cipher").read_bytes(),
                       EncryptionAlgorithm="SM2PKE")["Plaintext"] == b"sealed outside, opened inside"
    inside = kms.encrypt(KeyId=encrypter["KeyId"], Plaintext=b"x" * 1024, EncryptionAlgorithm="SM2PKE")["CiphertextBlob"]
    assert kms.decrypt(KeyId=encrypter["KeyId"], CiphertextBlob=inside, EncryptionAlgorithm="SM2PKE")["Plaintext"] == b"x" * 1024
    assert error_code(lambda: kms.encrypt(KeyId=encrypter["KeyId"], Plaintext=b"x" * 1025, EncryptionAlgorithm="SM2PKE")) == "ValidationException"
    assert error_code(lambda: kms.decrypt(KeyId=encrypter["KeyId"], CiphertextBlob=inside[:-1] + bytes([inside[-1] ^ 1]),
                                          EncryptionAlgorithm="SM2PKE")) == "InvalidCiphertextException"

    a = kms.create_key(KeySpec="SM2", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    b = kms.create_key(KeySpec="SM2", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    ab = kms.derive_shared_secret(KeyId=a, KeyAgreementAlgorithm="ECDH", PublicKey=kms.get_public_key(KeyId=b)["PublicKey"])["SharedSecret"]
    ba = kms.derive_shared_secret(KeyId=b, KeyAgreementAlgorithm="ECDH", PublicKey=kms.get_public_key(KeyId=a)["PublicKey"])["SharedSecret"]
    assert ab == ba and len(ab) == 32

    wrapping = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(KeyId=wrapping, KeyPairSpec="SM2")
    (tmp_path / "pair.der").write_bytes(pair["PrivateKeyPlaintext"])
    derived = subprocess.run(["openssl", "pkey", "-inform", "DER", "-in", str(tmp_path / "pair.der"), "-pubout", "-outform", "DER"],
                             capture_output=True, check=True).stdout
    assert derived == pair["PublicKey"]


@pytest.mark.parametrize("spec", ["ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa_signatures_verify_with_pythons_cryptography(kms, spec):
    from cryptography.hazmat.primitives.asymmetric import mldsa
    key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert key["SigningAlgorithms"] == ["ML_DSA_SHAKE_256"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    assert isinstance(public, mldsa.MLDSA65PublicKey if spec == "ML_DSA_65" else mldsa.MLDSA87PublicKey)
    message = os.urandom(4096)
    signature = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    public.verify(signature, message)
    assert kms.verify(KeyId=key["KeyId"], Message=message, Signature=signature, SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]
    assert error_code(lambda: kms.verify(KeyId=key["KeyId"], Message=message[:-1], Signature=signature,
                                         SigningAlgorithm="ML_DSA_SHAKE_256")) == "KMSInvalidSignatureException"
    other = (mldsa.MLDSA65PrivateKey if spec == "ML_DSA_65" else mldsa.MLDSA87PrivateKey).generate().sign(message)
    assert error_code(lambda: kms.verify(KeyId=key["KeyId"], Message=message, Signature=other,
                                         SigningAlgorithm="ML_DSA_SHAKE_256")) == "KMSInvalidSignatureException"
    assert error_code(lambda: kms.sign(KeyId=key["KeyId"], Message=message[:64], MessageType="DIGEST",
                                       SigningAlgorithm="ML_DSA_SHAKE_256")) == "ValidationException"
    assert error_code(lambda: kms.sign(KeyId=key["KeyId"], Message=message[:64], MessageType="EXTERNAL_MU",
                                       SigningAlgorithm="ML_DSA_SHAKE_256")) == "UnsupportedOperationException"
    assert error_code(lambda: kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")) == "InvalidKeyUsageException"
