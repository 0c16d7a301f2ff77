"""Fill a models volume once: the init container's and the VM unit's `fetch-model` step.

The file is downloaded beside its destination and renamed into place only after its size (and
SHA-256, when given) check out, so a crash never leaves a half-written model that later starts
would trust. When the destination already exists, nothing is downloaded: starts after the first
cost nothing.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable
from pathlib import Path

from langdeploy.errors import LangdeployError
from langdeploy.fsutil import atomic_binary

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    timeout_s: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> bool:
    """Download ``url`` to ``dest`` unless it is there. Returns True when it downloaded."""
    if dest.is_file():
        if sha256 is not None and sha256_of(dest) != sha256.lower():
            raise LangdeployError(
                f"{dest} exists but its SHA-256 is not {sha256}.",
                fix="Delete the file so that it is fetched again, or correct deploy.model_sha256.",
            )
        return False
    if not url.startswith(("https://", "http://")):
        raise LangdeployError(
            f"Cannot fetch the model from {url!r}: only http(s) URLs are supported.",
            fix="Set deploy.model_url to an https URL of the .gguf file.",
        )
    digest = hashlib.sha256()
    try:
        # A check that fails inside the block removes the partial file; dest is never touched.
        with atomic_binary(dest) as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while block := resp.read(CHUNK):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
            if total is not None and done != total:
                raise LangdeployError(
                    f"The download of {url} stopped at {done} of {total} bytes.",
                    fix="Run it again; the partial file was removed.",
                )
            if sha256 is not None and digest.hexdigest() != sha256.lower():
                raise LangdeployError(
                    f"The file from {url} has SHA-256 {digest.hexdigest()}, not {sha256}.",
                    fix="Check deploy.model_url and deploy.model_sha256.",
                )
    except OSError as exc:
        raise LangdeployError(
            f"Could not fetch the model from {url}: {exc}.",
            fix="Check the URL, the network policy and the free space on the volume.",
        ) from None
    return True
