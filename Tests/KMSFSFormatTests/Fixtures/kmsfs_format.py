#!/usr/bin/env python3
"""A second, independent implementation of the kmsfs file format (docs/FORMAT.md), version 2.

It exists to prove the spec is complete: it shares no code with the Swift implementation, uses
Python's `cryptography` package for AES-256 (ECB, for XAES's key derivation) and AES-256-GCM, and the Swift tests check that the two agree
byte for byte (known-answer vectors) and that this one decrypts what Swift writes.

  kmsfs_format.py vectors              print the known-answer vectors as JSON
  kmsfs_format.py decrypt KEYHEX FILE  write FILE's plaintext to stdout (exit 1 on any integrity error)
"""
import hashlib
import json
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"KMSF"
VERSION = 2
HEADER_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE


class IntegrityError(Exception):
    pass


def header_bytes(chunk_size, file_id):
    return MAGIC + struct.pack(">HHI", VERSION, 0, chunk_size) + file_id + b"\0\0\0\0"


def parse_header(data):
    if len(data) < HEADER_SIZE or data[:4] != MAGIC:
        raise IntegrityError("not a kmsfs file")
    version, flags, chunk_size = struct.unpack(">HHI", data[4:12])
    if version != VERSION:
        raise IntegrityError("unsupported version %d" % version)
    if flags != 0 or data[28:32] != b"\0\0\0\0":
        raise IntegrityError("reserved header bits set")
    if chunk_size not in [1 << n for n in range(12, 21)]:
        raise IntegrityError("chunk size not allowed")
    return chunk_size, data[12:28]


def xaes_key(key, nonce):
    """XAES-256-GCM (C2SP): the AES-256 key for this 24-byte nonce, derived from its first half."""
    aes = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    l = int.from_bytes(aes.update(bytes(16)), "big")
    k1 = (l << 1) & ((1 << 128) - 1)
    if l >> 127:
        k1 ^= 0x87
    k1 = k1.to_bytes(16, "big")
    m1 = b"\x00\x01X\x00" + nonce[:12]
    m2 = b"\x00\x02X\x00" + nonce[:12]
    return aes.update(bytes(a ^ b for a, b in zip(m1, k1)) + bytes(a ^ b for a, b in zip(m2, k1)))


def xaes_seal(key, nonce, plaintext, aad):
    return AESGCM(xaes_key(key, nonce)).encrypt(nonce[12:], plaintext, aad)


def xaes_open(key, nonce, sealed, aad):
    return AESGCM(xaes_key(key, nonce)).decrypt(nonce[12:], sealed, aad)


def aad(header, index, final):
    return header + struct.pack(">QB", index, 1 if final else 0)


def encrypt(key, file_id, chunk_size, plaintext, nonce_for):
    header = header_bytes(chunk_size, file_id)
    out = bytearray(header)
    full, rest = divmod(len(plaintext), chunk_size)
    # Every chunk but the last is full; the last is short (possibly empty) and final.
    for index in range(full + 1):
        final = index == full
        piece = plaintext[index * chunk_size:(index * chunk_size + (rest if final else chunk_size))]
        nonce = nonce_for(index)
        out += nonce + xaes_seal(key, nonce, piece, aad(header, index, final))
    return bytes(out)


def decrypt(key, data):
    chunk_size, _ = parse_header(data)
    header = data[:HEADER_SIZE]
    cipher_chunk = chunk_size + OVERHEAD
    body = len(data) - HEADER_SIZE
    full, rest = divmod(body, cipher_chunk)
    if rest < OVERHEAD:
        raise IntegrityError("invalid ciphertext size")
    plain = bytearray()
    for index in range(full + 1):
        final = index == full
        start = HEADER_SIZE + index * cipher_chunk
        slot = data[start:start + (rest if final else cipher_chunk)]
        try:
            plain += xaes_open(key, slot[:NONCE_SIZE], slot[NONCE_SIZE:], aad(header, index, final))
        except Exception:
            if not final and slot == bytes(len(slot)):
                plain += bytes(chunk_size)  # a hole
            else:
                raise IntegrityError("chunk %d failed authentication" % index)
    return bytes(plain)


VECTOR_KEY = bytes(range(32))
VECTOR_FILE_ID = bytes(range(0xA0, 0xB0))
VECTOR_CHUNK_SIZE = 4096


def vector_nonce(index):
    """Fixed nonces for the vectors only: A5 A5 A5 A5 ‖ index (u64 big-endian) ‖ 12 × 5A."""
    return b"\xa5" * 4 + struct.pack(">Q", index) + b"\x5a" * 12


VECTOR_PLAINTEXTS = {
    "empty": b"",
    "short": b"Hello, kmsfs!",
    "one-full-chunk": bytes((i * 7) % 256 for i in range(4096)),
    "two-chunks-and-a-bit": bytes(i % 251 for i in range(10000)),
}


def vectors():
    result = []
    for name, plaintext in VECTOR_PLAINTEXTS.items():
        data = encrypt(VECTOR_KEY, VECTOR_FILE_ID, VECTOR_CHUNK_SIZE, plaintext, vector_nonce)
        assert decrypt(VECTOR_KEY, data) == plaintext
        result.append({
            "name": name,
            "plaintextSHA256": hashlib.sha256(plaintext).hexdigest(),
            "plaintextLength": len(plaintext),
            "fileSHA256": hashlib.sha256(data).hexdigest(),
            "fileLength": len(data),
            "fileHex": data.hex() if len(data) <= 256 else None,
            "finalChunkHex": data[HEADER_SIZE + (len(plaintext) // VECTOR_CHUNK_SIZE) * (VECTOR_CHUNK_SIZE + OVERHEAD):].hex(),
        })
    return {"key": VECTOR_KEY.hex(), "fileID": VECTOR_FILE_ID.hex(), "chunkSize": VECTOR_CHUNK_SIZE,
            "nonce": "a5a5a5a5 || u64be(chunk index) || 5a x 12", "vectors": result}


# C2SP's XAES-256-GCM vectors: the derivation above is the published one.
assert xaes_seal(b"\x01" * 32, b"ABCDEFGHIJKLMNOPQRSTUVWX", b"XAES-256-GCM", b"").hex() == \
    "ce546ef63c9cc60765923609" "b33a9a1974e96e52daf2fcf7075e2271"
assert xaes_seal(b"\x03" * 32, b"ABCDEFGHIJKLMNOPQRSTUVWX", b"XAES-256-GCM", b"c2sp.org/XAES-256-GCM").hex() == \
    "986ec1832593df5443a17943" "7fd083bf3fdb41abd740a21f71eb769d"


def main(argv):
    if len(argv) == 2 and argv[1] == "vectors":
        json.dump(vectors(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if len(argv) == 4 and argv[1] == "decrypt":
        with open(argv[3], "rb") as f:
            data = f.read()
        try:
            sys.stdout.buffer.write(decrypt(bytes.fromhex(argv[2]), data))
        except IntegrityError as error:
            sys.stderr.write("integrity error: %s\n" % error)
            return 1
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
