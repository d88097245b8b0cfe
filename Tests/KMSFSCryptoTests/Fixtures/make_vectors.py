#!/usr/bin/env python3
"""Writes aes_gcm_vectors.json: AES-256-GCM cases computed by Python's `cryptography` (OpenSSL
underneath, but through an independent binding), to cross-check KMSFSCrypto's EVP wrapper.
Deterministic: the inputs come from a seeded generator, so re-running gives the same file."""
import json
import random

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

rng = random.Random(20261123)
lengths = [0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 1000, 4095, 4096, 4097, 5000]
lengths += [rng.randrange(0, 5001) for _ in range(25)]
cases = []
for n in lengths:
    key = rng.randbytes(32)
    nonce = rng.randbytes(12)
    aad = rng.randbytes(rng.choice([0, 1, 13, 41, 100]))
    plaintext = rng.randbytes(n)
    sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
    cases.append({"key": key.hex(), "nonce": nonce.hex(), "aad": aad.hex(), "plaintext": plaintext.hex(),
                  "ciphertext": sealed[:-16].hex(), "tag": sealed[-16:].hex()})
with open("aes_gcm_vectors.json", "w") as f:
    json.dump({"source": "python cryptography AESGCM, make_vectors.py", "cases": cases}, f, indent=1)
    f.write("\n")
