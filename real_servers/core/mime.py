"""Content types by file extension (a fixed table, so every host answers alike)."""

from __future__ import annotations

import os

DEFAULT = "application/octet-stream"

TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css",
    ".js": "text/javascript",
    ".json": "application/json",
    ".xml": "application/xml",
    ".csv": "text/csv",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
    ".wasm": "application/wasm",
    ".mp4": "video/mp4",
    ".mp3": "audio/mpeg",
    ".woff2": "font/woff2",
    ".bin": DEFAULT,
}


def content_type(path: str) -> str:
    """The MIME type for *path*; unknown extensions get ``application/octet-stream``."""
    return TYPES.get(os.path.splitext(path)[1].lower(), DEFAULT)
