"""A real S3 server on loopback for the cloud tests: moto's (pinned in requirements.txt), in a thread of
the test process, started and stopped by the `s3` fixture (conftest.py). Snakemake reaches it through its
S3 storage plugin as it would reach AWS, MinIO or Cloud Storage."""

from __future__ import annotations

import logging

BUCKET = "lrstudy-test"
# Any key works with moto; given on the command line, so that nothing in the environment is needed.
KEYS = {"access-key": "testing", "secret-key": "testing"}


class S3Server:
    def __init__(self):
        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEYS["access-key"],
            aws_secret_access_key=KEYS["secret-key"],
        )
        self.client.create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        self.server.stop()

    def storage_args(self, prefix: str) -> list[str]:
        """snakemake's options for keeping every file of the study under s3://BUCKET/prefix on this server."""
        return [
            "--default-storage-provider",
            "s3",
            "--default-storage-prefix",
            f"s3://{BUCKET}/{prefix}",
            "--storage-s3-endpoint-url",
            self.endpoint,
            *(arg for key, value in KEYS.items() for arg in (f"--storage-s3-{key}", value)),
        ]

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Key -> size of every object under `prefix`."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
