"""A fuzzer against kmsd over raw sockets: mutated and random request bodies (correctly signed, so
they reach the JSON parser and the operations), mutated and missing headers, broken signatures,
and raw garbage instead of HTTP. Every case must get an answer within 10 s — 4xx, or 2xx where
the mutation left a valid request — never a 5xx, a crash or a hang; kmsd must still serve a valid
request at the end. KMSD_FUZZ_CASES sets the number of cases (CI 3 000; the soak 100 000),
KMSD_FUZZ_SEED the seed, KMSD_FUZZ_REPORT a JSON file for the figures."""
import base64
import collections
import json
import os
import random
import socket

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from conftest import REGION

CASES = int(os.environ.get("KMSD_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("KMSD_FUZZ_SEED", "20261124"))


def templates(key_id, blob):
    """Valid requests of many operations, to mutate."""
    context = {"app": "fuzz", "n": "1"}
    return [
        ("CreateKey", {"Description": "fuzz", "KeyUsage": "ENCRYPT_DECRYPT", "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
        ("DescribeKey", {"KeyId": key_id}),
        ("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"hello").decode(), "EncryptionContext": context}),
        ("Decrypt", {"CiphertextBlob": blob, "EncryptionContext": context}),
        ("GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": context}),
        ("GenerateDataKeyWithoutPlaintext", {"KeyId": key_id, "NumberOfBytes": 32}),
        ("ReEncrypt", {"CiphertextBlob": blob, "SourceEncryptionContext": context, "DestinationKeyId": key_id}),
        ("GenerateRandom", {"NumberOfBytes": 16}),
        ("ListKeys", {"Limit": 5}),
        ("ListAliases", {"KeyId": key_id}),
        ("CreateAlias", {"AliasName": "alias/fuzz", "TargetKeyId": key_id}),
        ("TagResource", {"KeyId": key_id, "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        ("ListResourceTags", {"KeyId": key_id}),
        ("GetKeyRotationStatus", {"KeyId": key_id}),
        ("EnableKeyRotation", {"KeyId": key_id, "RotationPeriodInDays": 90}),
        ("GetKeyPolicy", {"KeyId": key_id, "PolicyName": "default"}),
    ]


def key_spec_templates(client):
    """Valid requests of the asymmetric, HMAC and import operations, to mutate."""
    b64 = lambda data: base64.b64encode(data).decode()
    signer = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    rsa = client.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    mac = client.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    agree = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    external = client.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    symmetric = client.create_key()["KeyMetadata"]["KeyId"]
    signature = client.sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    mac_value = client.generate_mac(KeyId=mac, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    rsa_ciphertext = client.encrypt(KeyId=rsa, Plaintext=b"m", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    peer = client.get_public_key(KeyId=agree)["PublicKey"]
    parameters = client.get_parameters_for_import(KeyId=external, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    wrapping = serialization.load_der_public_key(parameters["PublicKey"])
    wrapped = wrapping.encrypt(os.urandom(32), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    return [
        ("Sign", {"KeyId": signer, "Message": b64(b"m"), "SigningAlgorithm": "ECDSA_SHA_256"}),
        ("Verify", {"KeyId": signer, "Message": b64(b"m"), "Signature": b64(signature), "SigningAlgorithm": "ECDSA_SHA_256"}),
        ("GetPublicKey", {"KeyId": signer}),
        ("GenerateMac", {"KeyId": mac, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_256"}),
        ("VerifyMac", {"KeyId": mac, "Message": b64(b"m"), "Mac": b64(mac_value), "MacAlgorithm": "HMAC_SHA_256"}),
        ("Decrypt", {"KeyId": rsa, "CiphertextBlob": b64(rsa_ciphertext), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        ("GenerateDataKeyPair", {"KeyId": symmetric, "KeyPairSpec": "ECC_NIST_P256"}),
        ("DeriveSharedSecret", {"KeyId": agree, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(peer)}),
        ("ImportKeyMaterial", {"KeyId": external, "ImportToken": b64(parameters["ImportToken"]),
                               "EncryptedKeyMaterial": b64(wrapped), "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
        ("GetKeyLastUsage", {"KeyId": signer}),
    ]


def random_value(rng, depth=0):
    kind = rng.randrange(10 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2 ** 31, 2 ** 63, -2 ** 63, 10 ** 30, 1e308, -0.0, 3.5])
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if kind == 4:
        return "x" * rng.choice([0, 1, 255, 256, 8192, 70000])
    if kind == 5:
        return base64.b64encode(rng.randbytes(rng.randrange(0, 6200))).decode()
    if kind == 6:
        return rng.choice(["alias/", "arn:aws:kms:us-east-1:111122223333:key/", "\u0000", "\ud800", "../../etc"])
    if kind == 7:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {rng.choice(["KeyId", "Plaintext", "x", "", "EncryptionContext"]): random_value(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))}


def mutate_structure(rng, body):
    body = json.loads(json.dumps(body))
    for _ in range(rng.randrange(1, 4)):
        choice = rng.randrange(4)
        if choice == 0 and body:
            body[rng.choice(list(body))] = random_value(rng)
        elif choice == 1 and body:
            del body[rng.choice(list(body))]
        elif choice == 2:
            body[rng.choice(["Unknown", "KeyId", "GrantTokens", "DryRun", "Limit", "Marker"])] = random_value(rng)
        else:
            key = rng.choice(list(body)) if body else "x"
            body[key] = {"nested": body.get(key)}
    return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")


def mutate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        if not data:
            data += rng.randbytes(4)
        at = rng.randrange(len(data))
        choice = rng.randrange(5)
        if choice == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif choice == 1:
            del data[at:at + rng.randrange(1, 8)]
        elif choice == 2:
            data[at:at] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"\\u", b"\x00", b"\xff", b"null"])
        elif choice == 3:
            data = data[:at]
        else:
            data[at:at] = data[at:at + rng.randrange(1, 20)]
    return bytes(data)


class Fuzzer:
    def __init__(self, kmsd):
        self.kmsd = kmsd
        self.signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(kmsd.access_key, kmsd.secret_key), "kms", REGION)

    def signed(self, target, body):
        """Headers (in order) for a POST of `body`, signed by botocore."""
        request = botocore.awsrequest.AWSRequest(
            method="POST", url="http://127.0.0.1:%d/" % self.kmsd.port, data=body,
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target})
        self.signer.add_auth(request)
        return [("Host", "127.0.0.1:%d" % self.kmsd.port), ("Content-Length", str(len(body)))] + list(request.headers.items())

    def send(self, raw, complete=True):
        """Sends raw bytes on a new connection; returns the status, or None if the connection
        closed without an answer. A request that is not complete (garbage) is followed by a
        shutdown of the sending side, so the server sees its end."""
        with socket.create_connection(("127.0.0.1", self.kmsd.port), timeout=10) as connection:
            try:
                connection.sendall(raw)
                if not complete:
                    connection.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early (a body too large) and closed
            answer = b""
            try:
                while b"\r\n" not in answer:
                    data = connection.recv(65536)
                    if not data:
                        break
                    answer += data
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError("no answer within 10 s to %r" % raw[:300])
        if not answer:
            return None
        assert answer.startswith(b"HTTP/1.1 "), answer[:100]
        return int(answer[9:12])


def request_bytes(headers, body, method=b"POST", path=b"/"):
    lines = [method + b" " + path + b" HTTP/1.1"]
    for name, value in headers:
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def with_length(headers, length):
    return [(n, v) for n, v in headers if n.lower() != "content-length"] + [("Content-Length", str(length))]


def test_fuzzed_requests_get_4xx_never_5xx_crash_or_hang(kmsd):
    client = kmsd.client()
    key_id = client.create_key(Description="fuzz")["KeyMetadata"]["KeyId"]
    blob = base64.b64encode(client.encrypt(KeyId=key_id, Plaintext=b"hello",
                                           EncryptionContext={"app": "fuzz", "n": "1"})["CiphertextBlob"]).decode()
    requests = templates(key_id, blob) + key_spec_templates(client)
    fuzzer = Fuzzer(kmsd)
    # Unmutated, every template is a valid request: the cases below reach the parser and the
    # operations, not only the signature check.
    for target, body in requests:
        raw = request_bytes(fuzzer.signed(target, json.dumps(body).encode()), json.dumps(body).encode())
        assert fuzzer.send(raw) == 200, target
    rng = random.Random(SEED)
    statuses = collections.Counter()
    kinds = collections.Counter()
    for case in range(CASES):
        target, body = rng.choice(requests)
        valid = json.dumps(body).encode()
        kind = rng.choices(["structure", "bytes", "random body", "deep", "header", "signature", "garbage", "http"],
                           [25, 25, 5, 2, 15, 10, 8, 10])[0]
        kinds[kind] += 1
        complete = True
        if kind in ("structure", "bytes", "random body", "deep"):
            payload = {"structure": lambda: mutate_structure(rng, body), "bytes": lambda: mutate_bytes(rng, valid),
                       "random body": lambda: rng.randbytes(rng.randrange(0, 2000)),
                       "deep": lambda: b"[" * rng.choice([100, 1000, 100000]) + b"1"}[kind]()
            raw = request_bytes(fuzzer.signed(target, payload), payload)
        elif kind == "header":
            headers = fuzzer.signed(target, valid)
            index = rng.randrange(len(headers))
            name, value = headers[index]
            choice = rng.randrange(5)
            if choice == 0:
                del headers[index]
            elif choice == 1:
                headers[index] = (name, mutate_bytes(rng, value.encode()))
            elif choice == 2:
                headers.append((name, value))
            elif choice == 3:
                headers[index] = (name, b"x" * rng.choice([1000, 10000, 100000]))
            else:
                headers[index] = (name, rng.choice([b"", b" ", b"\x00", "\u00e9".encode(), b"TrentService.Nope", b"-1", b"99999999999999999999"]))
            raw = request_bytes(headers, valid)
            # A changed Content-Length would leave the server waiting for bytes: close the side.
            complete = name.lower() != "content-length"
        elif kind == "signature":
            headers = fuzzer.signed(target, valid)
            authorization = dict(headers)["Authorization"]
            mutated = mutate_bytes(rng, authorization.encode())
            raw = request_bytes([(n, mutated if n == "Authorization" else v) for n, v in headers], valid)
        elif kind == "garbage":
            raw, complete = rng.randbytes(rng.randrange(1, 3000)), False
        else:
            headers = fuzzer.signed(target, valid)
            choice = rng.randrange(6)
            if choice == 0:
                raw = request_bytes(headers, valid, method=rng.choice([b"GET", b"PUT", b"DELETE", b"BREW"]))
            elif choice == 1:
                raw = request_bytes(headers, valid, path=rng.choice([b"/x", b"*", b"/?a=b", b"//", b"/%00"]))
            elif choice == 2:
                raw = request_bytes(with_length(headers, 2 << 20), b"")  # over the 1 MiB limit: 413
                complete = False
            elif choice == 3:
                chunked = [(n, v) for n, v in headers if n.lower() != "content-length"] + [("Transfer-Encoding", "chunked")]
                raw = request_bytes(chunked, b"%x\r\n" % len(valid) + valid + b"\r\n0\r\n\r\n")
            elif choice == 4:
                raw = request_bytes(headers, valid).replace(b"HTTP/1.1", rng.choice([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"FOO"]), 1)
            else:
                raw = request_bytes(with_length(headers, len(valid) - rng.randrange(1, len(valid))), valid)
        status = fuzzer.send(raw, complete=complete)
        statuses[status] += 1
        assert status is None or 200 <= status < 500, "case %d (%s): HTTP %s for %r" % (case, kind, status, raw[:500])
        if status is None:
            assert not complete, "case %d (%s): no answer to a complete request %r" % (case, kind, raw[:500])
        assert kmsd.process.poll() is None, "kmsd died at case %d (%s)" % (case, kind)
    # Still serving, and the log shows no crash.
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    log = open(kmsd.log_path).read()
    assert "Fatal error" not in log and "panic" not in log.lower()
    assert sum(count for status, count in statuses.items() if status and 400 <= status < 500) > CASES // 2
    if os.environ.get("KMSD_FUZZ_REPORT"):
        with open(os.environ["KMSD_FUZZ_REPORT"], "w") as report:
            json.dump({"cases": CASES, "kinds": kinds, "statuses": {str(k): v for k, v in statuses.items()}}, report, indent=1)
