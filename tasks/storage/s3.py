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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nighttune.tasks.core import settings
from nighttune.tasks.core.errors import ObjectMissing, S3Error, short_repr
from nighttune.tasks.core.urls import endpoint_problem, redact

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


# S3's rules for bucket names (MinIO's are the same): checked here so that a name
# never reaches botocore's own validation (a traceback) or a local cache path.
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


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
            raise S3Error(f"S3 URI {short_repr(uri)} has no bucket; write s3://bucket/prefix")
        if not BUCKET.fullmatch(bucket) or ".." in bucket:
            raise S3Error(
                f"S3 URI {short_repr(uri)}: {short_repr(bucket)} is not a bucket name "
                "(3-63 lowercase letters, digits, '.' and '-')"
            )
        prefix = prefix.strip("/")
        if len(prefix.encode()) > 900 or any(ord(c) < 32 for c in prefix):
            raise S3Error(
                f"S3 URI {short_repr(uri)}: the prefix is over 900 bytes or holds control "
                "characters"
            )
        return cls(bucket, prefix)

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def child(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


def client(
    endpoint_url: str | None = None, timeout: float | None = None, attempts: int | None = None
) -> Any:
    """A boto3 S3 client with standard retries; endpoint from the argument or the env.

    An endpoint with credentials in it is refused wherever it comes from (the flag,
    the config or the environment botocore reads), before any request is made.
    """
    import boto3
    from botocore.config import Config

    if endpoint_url and (problem := endpoint_problem(endpoint_url)):
        raise S3Error(f"S3 endpoint URL {problem}")
    machine = settings.current()
    if machine.s3_endpoint and (problem := endpoint_problem(machine.s3_endpoint[1])):
        raise S3Error(f"{machine.s3_endpoint[0]} {problem}")
    timeout = timeout or machine.s3_timeout_s
    attempts = attempts or machine.s3_attempts
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        s3={"addressing_style": "path"} if endpoint_url or machine.s3_endpoint else {},
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


def upload_verified(s3: Any, local: Path, *, bucket: str, key: str) -> None:
    """Upload ``local`` to ``bucket``/``key`` with boto3's managed transfer, then check size
    and SHA256 on the server."""
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


class Conflict(Exception):
    """A conditional write lost a race: the object changed since it was read."""


def put_json(
    s3: Any,
    bucket: str,
    key: str,
    *,
    text: str,
    if_match: str | None = None,
    if_absent: bool = False,
) -> None:
    """One small object in one PUT: readers see the old or the new one, never half.

    ``if_match`` (an ETag) or ``if_absent`` make it conditional (S3, MinIO and moto
    honour both): `Conflict` when another writer got there first.
    """
    from botocore.exceptions import ClientError

    conditions = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"} if if_absent else {}
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode(),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            **conditions,
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if conditions and code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise Conflict(key) from None
        raise explain(exc, bucket, f"write {key}") from None
    except Exception as exc:
        raise explain(exc, bucket, f"write {key}") from None


def get_text(s3: Any, bucket: str, key: str, *, max_bytes: int = 2**20) -> str | None:
    """The object's text, or None if there is no such key (see `get_versioned_text`)."""
    found = get_versioned_text(s3, bucket, key, max_bytes=max_bytes)
    return found[0] if found else None


def get_versioned_text(
    s3: Any, bucket: str, key: str, *, max_bytes: int = 2**20
) -> tuple[str, str] | None:
    """The object's text and ETag, or None if there is no such key.

    An object over ``max_bytes`` is read only that far (and one byte more), so that
    its parser refuses it instead of this process holding whatever the bucket holds.
    """
    from botocore.exceptions import ClientError

    try:
        reply = s3.get_object(Bucket=bucket, Key=key)
        try:
            data = reply["Body"].read(max_bytes + 1)
        finally:
            reply["Body"].close()
        return data.decode("utf-8", errors="replace"), reply.get("ETag", "")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise explain(exc, bucket, f"read {key}") from None
    except Exception as exc:
        raise explain(exc, bucket, f"read {key}") from None


def download(s3: Any, bucket: str, key: str, *, local: Path) -> None:
    """Download one object to ``local`` (parents created)."""
    from botocore.exceptions import ClientError

    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(bucket, key, str(local))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise ObjectMissing(f"s3://{bucket}/{key} does not exist") from None
        raise explain(exc, bucket, f"download {key}") from None
    except Exception as exc:
        raise explain(exc, bucket, f"download {key}") from None
