"""The media store on an S3-compatible bucket (MinIO, Alibaba OSS, Tencent COS, AWS) with boto3.

boto3 is synchronous; each call runs in a thread. Objects are keyed by content hash like the
directory store (`<prefix>ab/cd/<sha256>`), so a put of bytes already there is skipped after a
HEAD. botocore's standard retry mode retries throttling and 5xx answers.
"""

from __future__ import annotations

import asyncio

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from workflows.media_store import key_of

from .settings import Settings

MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    def __init__(self, client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.media_s3_bucket:
            raise ValueError("MEDIA_STORE=s3 needs MEDIA_S3_BUCKET")
        config = Config(retries={"max_attempts": 5, "mode": "standard"},
                        s3={"addressing_style": settings.media_s3_addressing})
        client = boto3.client("s3", endpoint_url=settings.media_s3_endpoint_url or None,
                              region_name=settings.media_s3_region or None,
                              aws_access_key_id=settings.media_s3_access_key or None,
                              aws_secret_access_key=settings.media_s3_secret_key or None, config=config)
        return cls(client, settings.media_s3_bucket, settings.media_s3_prefix)

    def key(self, sha: str) -> str:
        return f"{self.prefix}{key_of(sha)}"

    def where(self, sha: str) -> str:
        return f"s3://{self.bucket}/{self.key(sha)}"

    def _exists(self, sha: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha))
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in MISSING:
                return False
            raise
        return True

    def _put(self, sha: str, data: bytes) -> bool:
        if self._exists(sha):
            return False
        self.client.put_object(Bucket=self.bucket, Key=self.key(sha), Body=data)
        return True

    def _get(self, sha: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha))["Body"].read()
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in MISSING:
                return None
            raise

    async def put(self, sha: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put, sha, data)

    async def get(self, sha: str) -> bytes | None:
        return await asyncio.to_thread(self._get, sha)

    async def exists(self, sha: str) -> bool:
        return await asyncio.to_thread(self._exists, sha)
