"""Where training datasets are written: the store folder (default), any
local path, or ``s3://bucket/prefix`` object storage (pyarrow's S3
filesystem).

S3 endpoints and credentials come from the usual AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible servers) or
from query parameters of the URI (``?endpoint_override=host:port&scheme=http``).
Secrets in a URI are never recorded in the catalog.

A dataset version lives in ``<base>/<name>/v<N>/``: one folder per split and
a ``manifest.json``. Local writes go to a hidden temporary folder renamed
into place at the end; S3 has no rename, so the manifest is written last and
a failed write deletes what it wrote.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow.fs as pafs

from fsql.errors import FsqlError, InvalidParameter

SECRET_PARAMS = {"access_key", "secret_key", "session_token"}


class LocationNotWritable(FsqlError):
    sqlstate = "58030"  # io_error


class LocationError(FsqlError):
    sqlstate = "58030"


@dataclass(frozen=True)
class Location:
    fs: pafs.FileSystem
    base: str  # a path inside ``fs``
    uri: str  # what the catalog records (no secrets)
    scheme: str  # 'file' | 's3'

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def path(self, *parts: str) -> str:
        """A path under the base folder."""
        return join(self.base, *parts)

    def uri_of(self, *parts: str) -> str:
        if self.is_local:
            return self.path(*parts)
        split = urlsplit(self.uri)
        path = "/".join([split.path.rstrip("/"), *[p.strip("/") for p in parts if p]])
        return urlunsplit((split.scheme, split.netloc, path, split.query, ""))

    # file operations ----------------------------------------------------

    def write_bytes(self, path: str, data: bytes | memoryview) -> None:
        with self.fs.open_output_stream(path) as out:
            out.write(data)

    def read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as f:
                return bytes(f.read())
        except (OSError, FileNotFoundError) as e:
            raise LocationError(
                f"cannot read {self.describe(path)}: {_reason(e)}",
                hint="The dataset's files may have been moved or deleted; "
                "`fsql td rebuild NAME --version N` writes them again.",
            ) from None

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def is_dir(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.Directory

    def make_dir(self, path: str) -> None:
        self.fs.create_dir(path, recursive=True)

    def delete_dir(self, path: str) -> None:
        try:
            if self.exists(path) or not self.is_local:
                self.fs.delete_dir(path)
        except (OSError, FileNotFoundError):
            pass

    def move(self, src: str, dst: str) -> None:
        self.fs.move(src, dst)

    def describe(self, path: str) -> str:
        return path if self.is_local else f"s3://{path}"

    def check_writable(self) -> None:
        """Create the base folder and write and delete a probe file."""
        probe = self.path(f".fsql-probe-{uuid.uuid4().hex}")
        try:
            self.make_dir(self.base)
            self.write_bytes(probe, b"ok")
            self.fs.delete_file(probe)
        except (OSError, FileNotFoundError) as e:
            raise LocationNotWritable(
                f"training dataset location {self.uri!r} is not writable: {_reason(e)}",
                sqlstate="42501" if isinstance(e, PermissionError) else None,
                hint="Give a folder you can write to, or an s3:// URI with credentials "
                "in the AWS environment variables.",
            ) from None


def join(folder: str, *parts: str) -> str:
    return "/".join([folder.rstrip("/"), *[p.strip("/") for p in parts if p]])


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _s3_filesystem(uri: str) -> tuple[pafs.FileSystem, str, str]:
    split = urlsplit(uri)
    if not split.netloc:
        raise InvalidParameter(f"location {uri!r} names no bucket", hint="Use s3://bucket/prefix.")
    params = dict(parse_qsl(split.query))
    kwargs: dict[str, object] = {}
    endpoint = params.pop("endpoint_override", None) or os.environ.get(
        "AWS_ENDPOINT_URL_S3", os.environ.get("AWS_ENDPOINT_URL")
    )
    scheme = params.pop("scheme", None)
    if endpoint:
        if "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
        kwargs["endpoint_override"] = endpoint.rstrip("/")
    if scheme:
        kwargs["scheme"] = scheme
    region = (
        params.pop("region", None)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if region:
        kwargs["region"] = region
    for key in ("access_key", "secret_key", "session_token"):
        if key in params:
            kwargs[key] = params.pop(key)
    if params:
        raise InvalidParameter(
            f"unknown s3 location parameter(s): {', '.join(sorted(params))}",
            hint="Known: endpoint_override, scheme, region, access_key, secret_key, session_token.",
        )
    try:
        fs = pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]
    except Exception as e:
        raise LocationError(f"cannot open {uri!r}: {_reason(e)}") from None
    base = (split.netloc + "/" + split.path.strip("/")).rstrip("/")
    kept = [(k, v) for k, v in parse_qsl(split.query) if k not in SECRET_PARAMS]
    recorded = urlunsplit(("s3", split.netloc, split.path.rstrip("/"), urlencode(kept), ""))
    return fs, base, recorded


def resolve(location: str | None, default_root: Path) -> Location:
    """A :class:`Location` for a user-given location (None: the store folder)."""
    if location is None or not str(location).strip():
        root = default_root.resolve()
        return Location(pafs.LocalFileSystem(), str(root), str(root), "file")
    text = str(location).strip()
    if text.startswith("s3://"):
        fs, base, recorded = _s3_filesystem(text)
        return Location(fs, base, recorded, "s3")
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise InvalidParameter(
            f"unsupported location {location!r}",
            hint="Use a local path, file:///path or s3://bucket/prefix.",
        )
    root = Path(text).expanduser()
    if not root.is_absolute():
        root = Path.cwd() / root
    root = Path(os.path.normpath(root))
    return Location(pafs.LocalFileSystem(), str(root), str(root), "file")
