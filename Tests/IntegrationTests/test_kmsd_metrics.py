"""kmsd's Prometheus metrics (`kmsd serve --metrics unix:/PATH`), scraped over the socket and parsed
with prometheus_client: requests by operation and outcome count exactly what boto3 sent
(successes, refusals, throttling), an operation name kmsd does not serve is one "unknown" label,
keys by state follow DisableKey, store transactions and the audit backlog are there; the socket
is 0600 and a scraper sending garbage gets a 404 and breaks nothing."""
import os
import socket
import stat
import tempfile
import threading
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REGION, Kmsd


def scrape(path, request=b"GET /metrics HTTP/1.1\r\nHost: kmsd\r\n\r\n"):
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(path)
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body.decode()


def samples(text):
    """{(name, frozenset(labels)): value} of every sample."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())), 0)


@pytest.fixture()
def measured():
    with tempfile.TemporaryDirectory(prefix="kmsd-metrics-") as directory:
        path = os.path.join(directory, "metrics.sock")
        server = Kmsd(directory, extra_args=("--metrics", "unix:" + path, "--quota", "management=50"))
        try:
            yield server, path
        finally:
            server.stop()


def test_metrics_count_what_clients_did(measured):
    server, path = measured
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    kms = boto3.client("kms", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=server.access_key,
                       aws_secret_access_key=server.secret_key, config=botocore.config.Config(retries={"total_max_attempts": 1}))
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)]
    for _ in range(7):
        kms.generate_data_key(KeyId=keys[0], KeySpec="AES_256")
    kms.disable_key(KeyId=keys[1])
    with pytest.raises(botocore.exceptions.ClientError):
        kms.describe_key(KeyId="alias/missing")
    throttled = 0
    for _ in range(80):
        try:
            kms.list_keys()
        except botocore.exceptions.ClientError as error:
            assert error.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
    assert throttled > 0
    # An operation kmsd does not serve, signed properly: one "unknown" label, not its name.
    status, body, _ = server.raw("NoSuchOperationForMetrics", {})
    assert status == 400

    status, text = scrape(path)
    assert status == "HTTP/1.1 200 OK"
    found = samples(text)
    assert value(found, "kmsd_requests_total", operation="GenerateDataKey", outcome="ok") == 7
    assert value(found, "kmsd_requests_total", operation="CreateKey", outcome="ok") == 3
    assert value(found, "kmsd_requests_total", operation="DescribeKey", outcome="client_error") == 1
    assert value(found, "kmsd_requests_total", operation="ListKeys", outcome="throttled") == throttled
    assert value(found, "kmsd_requests_total", operation="ListKeys", outcome="ok") == 80 - throttled
    assert value(found, "kmsd_throttled_requests_total", **{"class": "management"}) == throttled
    assert value(found, "kmsd_requests_total", operation="unknown", outcome="client_error") == 1
    assert not any("NoSuchOperationForMetrics" in str(labels) for _, labels in found)
    assert value(found, "kmsd_request_duration_seconds_count", operation="GenerateDataKey") == 7
    assert value(found, "kmsd_keys", state="Enabled") == 2 and value(found, "kmsd_keys", state="Disabled") == 1
    assert value(found, "kmsd_store_transaction_seconds_count") >= 4  # three CreateKeys and a DisableKey at least
    assert ("kmsd_audit_backlog", frozenset()) in found and ("kmsd_connections", frozenset()) in found

    # A client sending a byte now and then holds the endpoint two seconds at most in all.
    trickle = socket.socket(socket.AF_UNIX)
    trickle.connect(path)
    def drip():
        for _ in range(8):
            try:
                trickle.send(b"G")
            except OSError:
                return
            time.sleep(1)
    dripping = threading.Thread(target=drip)
    dripping.start()
    time.sleep(0.1)
    started = time.time()
    assert scrape(path)[0] == "HTTP/1.1 200 OK"
    assert time.time() - started < 5, "a trickling client held the endpoint"
    dripping.join()
    trickle.close()

    # Garbage and wrong paths: a 404, and the endpoint still answers.
    assert scrape(path, b"GET /other HTTP/1.1\r\n\r\n")[0] == "HTTP/1.1 404 Not Found"
    assert scrape(path, b"\x00\xff garbage\r\n\r\n")[0] == "HTTP/1.1 404 Not Found"
    assert scrape(path)[0] == "HTTP/1.1 200 OK"
