"""Replay input: JSONL files (optionally gzip) as chunks of raw lines.

Lines stay bytes so the decoder parses them with orjson directly; chunks bound
memory for arbitrarily large files.  Gzip is detected by its magic bytes, not
the file name, because exported files are often misnamed.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"


def iter_line_chunks(paths: Sequence[str | Path], chunk_lines: int = 50_000
                     ) -> Iterator[list[bytes]]:
    """Lines of ``paths`` in order, newline stripped, at most ``chunk_lines`` per list.

    Every path is checked up front, so a missing file fails before any input
    is consumed; the error names the path.
    """
    if chunk_lines < 1:
        raise ValueError("chunk_lines must be >= 1")
    files = [Path(p) for p in paths]
    for p in files:
        if not p.exists():
            raise FileNotFoundError(2, "No such file", str(p))
    chunk: list[bytes] = []
    for p in files:
        with open(p, "rb") as raw:
            fh = _open_from(raw)
            try:
                for line in fh:
                    if line.endswith(b"\n"):
                        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                    chunk.append(line)
                    if len(chunk) >= chunk_lines:
                        yield chunk
                        chunk = []
            except (OSError, EOFError) as e:
                e.add_note(f"while reading {p}")
                raise
            finally:
                if fh is not raw:
                    fh.close()
    if chunk:
        yield chunk


def _open_from(fh: BinaryIO) -> BinaryIO:
    magic = fh.read(2)
    fh.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh
