#!/usr/bin/env python3
"""Writes sigv4_vectors.json: requests signed by botocore's own SigV4Auth (the signer every
boto3 and aws CLI request goes through), at the AWS test-suite time 20150830T123600Z with the
test-suite credentials. Deterministic; re-running gives the same file."""
import datetime
import json
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2015, 8, 30, 12, 36, 0)


def sign(method, url, headers, body, service, region, token=None):
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    # botocore signs the host from the URL; the HTTP layer sends it as the Host header.
    host = url.split("/")[2]
    return {
        "method": method, "path": "/", "service": service, "region": region,
        "headers": [["Host", host]] + [[k, v] for k, v in prepared.headers.items()],
        "body": body.decode() if isinstance(body, bytes) else body,
        "sessionToken": token,
    }


cases = {
    "kms-list-keys": sign("POST", "http://localhost:8080/", {
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}, b"{}", "kms", "us-east-1"),
    "kms-encrypt-eu": sign("POST", "https://kms.eu-west-1.amazonaws.com/", {
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Encrypt"},
        b'{"KeyId": "alias/app", "Plaintext": "aGVsbG8="}', "kms", "eu-west-1"),
    "kms-with-session-token": sign("POST", "http://127.0.0.1:4000/", {
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.DescribeKey"},
        b'{"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}', "kms", "us-east-1", token="session-token-example"),
}
with open("sigv4_vectors.json", "w") as f:
    json.dump({"source": "botocore SigV4Auth, make_vectors.py", "accessKeyID": "AKIDEXAMPLE",
               "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "time": "20150830T123600Z", "cases": cases}, f, indent=1)
    f.write("\n")
