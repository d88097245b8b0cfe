#!/usr/bin/env python3
"""A second, independent implementation of kmsfs's encrypted names (docs/FORMAT.md, "Encrypted
names"), sharing no code with the Swift one: Python's `cryptography` for HKDF-SHA-256 and
AES-SIV, the standard library for base64url and SHA-256.

  kmsfs_names.py vectors                           print the known-answer vectors as JSON
  kmsfs_names.py decrypt KEYHEX DIRIDHEX NAME      print the plaintext name (hex); exit 1 if it does not open
"""
import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PADDING = 16
LONG_PREFIX = b"kmsfs.long."


def siv_key(name_key):
    return HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"kmsfs names AES-256-SIV").derive(name_key)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def encrypt(name_key, directory_id, name):
    pad = PADDING - len(name) % PADDING
    sealed = AESSIV(siv_key(name_key)).encrypt(name + bytes([pad]) * pad, [directory_id])
    encoded = b64url(sealed)
    if len(encoded) <= 255:
        return {"entry": encoded.decode()}
    return {"entry": (LONG_PREFIX + b64url(hashlib.sha256(encoded).digest())).decode(), "sideFile": encoded.decode()}


def decrypt(name_key, directory_id, encoded):
    sealed = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    padded = AESSIV(siv_key(name_key)).decrypt(sealed, [directory_id])
    pad = padded[-1]
    if not 1 <= pad <= PADDING or padded[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    return padded[:-pad]


KEY = bytes(range(32))
DIRECTORY_ID = bytes(range(0xa0, 0xb0))
ROOT_ID = bytes(16)
NAMES = {
    "a": b"a",
    "fifteen-bytes": b"fifteen bytes!!",
    "sixteen-bytes": b"sixteen bytes!!!",
    "latin-1": b"caf\xe9",
    "payroll": b"payroll-2026-layoffs.xlsx",
    "longest-short": b"s" * 159,
    "shortest-long": b"l" * 160,
    "255-bytes": bytes((i % 254) + 1 if (i % 254) + 1 != 0x2f else 0x30 for i in range(255)),
}


TARGET_AD = b"kmsfs symlink target"
TARGETS = {"relative": b"../shared/payroll.xlsx", "absolute": b"/etc/passwd"}


def encrypt_target(name_key, target):
    pad = PADDING - len(target) % PADDING
    return b64url(AESSIV(siv_key(name_key)).encrypt(target + bytes([pad]) * pad, [TARGET_AD])).decode()


ATTRIBUTE_AD = b"kmsfs xattr name"
ATTRIBUTES = {"colour": b"user.colour", "checksum": b"user.checksum.sha256"}


def encrypt_attribute_name(name_key, name):
    rest = name[len(b"user."):]
    pad = PADDING - len(rest) % PADDING
    return (b"user." + b64url(AESSIV(siv_key(name_key)).encrypt(rest + bytes([pad]) * pad, [ATTRIBUTE_AD]))).decode()


def vectors():
    out = {"nameKey": KEY.hex(), "directoryID": DIRECTORY_ID.hex(), "vectors": []}
    for label, name in NAMES.items():
        for directory, directory_id in (("dir", DIRECTORY_ID), ("root", ROOT_ID)):
            vector = {"label": label, "directory": directory, "name": name.hex()}
            vector.update(encrypt(KEY, directory_id, name))
            out["vectors"].append(vector)
    out["attributes"] = [{"label": label, "name": name.hex(), "stored": encrypt_attribute_name(KEY, name)} for label, name in ATTRIBUTES.items()]
    out["targets"] = [{"label": label, "target": target.hex(), "stored": encrypt_target(KEY, target)} for label, target in TARGETS.items()]
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["vectors"]:
        print(json.dumps(vectors(), indent=1))
    elif sys.argv[1:2] == ["decrypt"] and len(sys.argv) == 5:
        try:
            print(decrypt(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4].encode()).hex())
        except Exception as error:
            print(error, file=sys.stderr)
            sys.exit(1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
