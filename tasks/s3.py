"""S3 (and S3-compatible: MinIO, moto) for exports: upload verified, download verified.

boto3's standard credential chain (environment, profile, instance role) decides who
we are; an endpoint URL (``--s3-endpoint-url``, config ``s3_endpoint_url`` or
``AWS_ENDPOINT_URL``) points at MinIO and friends. Transient failures (throttling,
resets, 5xx) are retried by botocore's standard retry mode; permanent ones (no such
bucket, access denied, bad keys) become an `S3Error` (a `UserError`: exit 2) naming
the bucket and what to check. No credential is ever logged or written: messages
carry the bucket, the key and the error code only, and endpoint URLs are shown
without any user:password part.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tasks.errors import UserError

CHUNK = 8 * 1024 * 1024  # multipart threshold and part size; the composite checksum needs it
PERMANENT = {
    "NoSuchBucket": "the bucket does not exist; check its name and region",
    "404": "the bucket does not exist; check its name and region",
    "AccessDenied": "access denied; check the credentials' permissions on the bucket",
    "403": "access denied; check the credentials (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or the profile) and their permissions on the bucket",
    "InvalidAccessKeyId": "the access key is not known; check AWS_ACCESS_KEY_ID or the profile",
    "InvalidClientTokenId": "the access key is not known; check AWS_ACCESS_KEY_ID or the profile",
    "SignatureDoesNotMatch": "the secret key does not match; check AWS_SECRET_ACCESS_KEY",
    "InvalidBucketName": "the bucket name is not valid",
    "AllAccessDisabled": "access to the bucket is disabled",
}


class S3Error(UserError):
    """A permanent S3 problem the user must fix (exit 2)."""


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/prefix`` split; the prefix keeps spaces and unicode as given."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise S3Error(f"not an S3 URI: {uri!r}; write s3://bucket/prefix")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket or "/" in bucket or bucket != bucket.strip():
            raise S3Error(f"S3 URI {uri!r} has no bucket; write s3://bucket/prefix")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def child(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


def is_s3(target: str) -> bool:
    return target.startswith("s3://")


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an S3 endpoint, or None. Never repeats a credential."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"give http(s)://host[:port] (got {redact(url)!r})"
    if parts.username or parts.password or parts.query:
        return (
            f"must not carry credentials or a query string (got {redact(url)!r} with them "
            "removed); put keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile"
        )
    return None


def redact(url: str | None) -> str | None:
    """An endpoint URL without user:password (and without a query string)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def client(
    endpoint_url: str | None = None, timeout: float | None = None, attempts: int | None = None
) -> Any:
    """A boto3 S3 client with standard retries; endpoint from the argument or the env."""
    import boto3
    from botocore.config import Config

    if endpoint_url and (problem := endpoint_problem(endpoint_url)):
        raise S3Error(f"S3 endpoint URL {problem}")
    timeout = timeout or float(os.environ.get("NIGHTTUNE_S3_TIMEOUT", "20"))
    attempts = attempts or int(os.environ.get("NIGHTTUNE_S3_ATTEMPTS", "5"))
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        s3={"addressing_style": "path"}
        if endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        else {},
    )
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


def explain(exc: Exception, bucket: str, action: str) -> Exception:
    """A permanent error as a one-line `S3Error`; anything else unchanged."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ProxyConnectionError,
    )

    if isinstance(exc, ProxyConnectionError):
        return S3Error(
            f"s3://{bucket}: cannot connect to the proxy "
            f"{redact(exc.kwargs.get('proxy_url'))}; "
            "check HTTPS_PROXY / HTTP_PROXY (or NO_PROXY for a local endpoint)"
        )
    if isinstance(exc, EndpointConnectionError):
        return S3Error(
            f"s3://{bucket}: cannot connect to {redact(exc.kwargs.get('endpoint_url'))}; "
            "check the network, or --s3-endpoint-url / AWS_ENDPOINT_URL for MinIO"
        )
    if isinstance(exc, NoCredentialsError):
        return S3Error(
            f"s3://{bucket}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an instance role applies"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in PERMANENT:
            return S3Error(f"s3://{bucket}: cannot {action} ({code}): {PERMANENT[code]}")
    return exc


def check_bucket(uri: S3Uri, endpoint_url: str | None = None) -> None:
    """Fail at once when the bucket is missing or the credentials are refused."""
    s3 = client(endpoint_url, timeout=5, attempts=2)
    try:
        s3.head_bucket(Bucket=uri.bucket)
    except Exception as exc:
        raise explain(exc, uri.bucket, "reach the bucket") from None


def sha256_b64(path: Path) -> tuple[str, str]:
    """(base64 sha256 of the whole file, base64 composite of its CHUNK-sized parts)."""
    whole = hashlib.sha256()
    parts = []
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            whole.update(block)
            parts.append(hashlib.sha256(block).digest())
    composite = hashlib.sha256(b"".join(parts)).digest()
    return base64.b64encode(whole.digest()).decode(), base64.b64encode(composite).decode()


def upload_verified(s3: Any, local: Path, bucket: str, key: str) -> None:
    """Upload with boto3's managed transfer, then check size and SHA256 on the server."""
    from boto3.s3.transfer import TransferConfig

    transfer = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK)
    try:
        s3.upload_file(
            str(local), bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=transfer
        )
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        raise explain(exc, bucket, f"upload {key}") from None
    if head["ContentLength"] != local.stat().st_size:
        raise OSError(
            f"s3://{bucket}/{key}: {head['ContentLength']} bytes on the server, "
            f"{local.stat().st_size} here"
        )
    served = head.get("ChecksumSHA256")
    if served:
        whole, composite = sha256_b64(local)
        if served.split("-")[0] not in (whole, composite):
            raise OSError(f"s3://{bucket}/{key}: SHA256 on the server does not match the file")


def put_json(s3: Any, bucket: str, key: str, text: str) -> None:
    """One small object in one PUT: readers see the old or the new one, never half."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode(),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
        )
    except Exception as exc:
        raise explain(exc, bucket, f"write {key}") from None


def get_text(s3: Any, bucket: str, key: str) -> str | None:
    """The object's text, or None if there is no such key."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise explain(exc, bucket, f"read {key}") from None
    except Exception as exc:
        raise explain(exc, bucket, f"read {key}") from None


def download(s3: Any, bucket: str, key: str, local: Path) -> None:
    """Download one object to ``local`` (parents created)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(bucket, key, str(local))
    except Exception as exc:
        raise explain(exc, bucket, f"download {key}") from None
