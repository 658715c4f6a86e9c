"""The presigned POST body: read from the socket in bounded chunks, checked part by part.

S3 (which Runway's upload URL imitates) checks a browser-style form: the policy fields exactly
as issued, then the file. `Form` enforces that while python-multipart parses the body as it
arrives, so a mistake is answered after the first offending part, not after 200 MB.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.multipart import parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

CHUNK = 1024 * 1024
MAX_FIELD_BYTES = 16 * 1024


class UploadRejected(Exception):
    """A storage error reply, S3 style: an XML body with a Code and a Message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message

    def body(self) -> bytes:
        """The XML body S3 would send."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{_xml_escape(self.message)}</Message>"
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>\n"
        ).encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class BodyReader:
    """Reads exactly Content-Length bytes from the socket in chunks of at most 1 MiB."""

    def __init__(
        self, rfile: io.BufferedIOBase, length: int, on_bytes: Callable[[int], None]
    ) -> None:
        self.rfile, self.remaining, self.on_bytes = rfile, length, on_bytes

    def read(self, limit: int = CHUNK) -> bytes:
        """The next chunk, b"" at the end; a client gone mid-body raises ConnectionError."""
        if self.remaining <= 0:
            return b""
        # read1: one recv of whatever has arrived, so memory stays at one chunk per connection
        chunk = self.rfile.read1(min(limit, self.remaining))
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        self.remaining -= len(chunk)
        self.on_bytes(len(chunk))
        return chunk

    def read_all(self) -> bytes:
        """The whole (small, JSON) body."""
        parts = []
        while self.remaining > 0:
            parts.append(self.read())
        return b"".join(parts)

    def drain(self, limit: float = float("inf")) -> None:
        """Discard up to `limit` bytes of what is left, without keeping any of it."""
        while self.remaining > 0 and limit > 0:
            limit -= len(self.read(int(min(CHUNK, limit))))


def too_large(max_size: int) -> UploadRejected:
    return UploadRejected(
        400,
        "EntityTooLarge",
        f"Your proposed upload exceeds the maximum allowed size ({max_size} bytes)",
    )


def too_small(min_size: int) -> UploadRejected:
    return UploadRejected(
        400,
        "EntityTooSmall",
        f"Your proposed upload is smaller than the minimum allowed size ({min_size} bytes)",
    )


class Form:
    """Callbacks for python-multipart that enforce the presigned-POST rules part by part.

    The file goes to `tmp_path` while its sha256 is computed; with no path it is only hashed
    (benchmarks that push many 200 MB files do not need the bytes, only the proof)."""

    def __init__(self, expected: dict[str, str], tmp_path: Path | None, max_size: int) -> None:
        self.expected = expected
        self.seen: dict[str, str] = {}
        self.tmp_path, self.max_size = tmp_path, max_size
        self.digest = hashlib.sha256()
        self.size = 0
        self.file_done = False
        self.ended = False
        self._in_file = False
        self._out: BinaryIO | None = None
        self._headers: dict[str, str] = {}
        self._hname = self._hvalue = b""
        self._name: str | None = None
        self._value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        """The parser callbacks, bound to this form."""
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        if self.file_done:
            raise bad_request("The file must be the last field of the form; nothing may follow it.")
        self._headers, self._name, self._value = {}, None, bytearray()
        self._hname = self._hvalue = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._hname.decode("latin-1").strip().lower()] = self._hvalue.decode(
            "latin-1"
        ).strip()
        self._hname = self._hvalue = b""

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise bad_request("Every part needs Content-Disposition: form-data with a name.")
        self._name = name.decode("utf-8", "replace")
        if self._name == "file":
            missing = [k for k in self.expected if k not in self.seen]
            if missing:
                raise bad_request(
                    f"Bucket POST must contain a field named '{missing[0]}' before the file "
                    f"(missing: {', '.join(missing)})."
                )
            self._in_file = True
            if self.tmp_path is not None:
                self._out = open(self.tmp_path, "wb")  # noqa: SIM115  closed in _part_end/discard
        elif self._name not in self.expected:
            raise bad_request(f"Invalid according to Policy: Extra input fields: {self._name}")
        elif self._name in self.seen:
            raise bad_request(f"Field '{self._name}' was sent twice.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            piece = data[start:end]
            self.size += len(piece)
            if self.size > self.max_size:
                raise too_large(self.max_size)
            self.digest.update(piece)
            if self._out is not None:
                self._out.write(piece)
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise bad_request(f"Field '{self._name}' is too long.")

    def _part_end(self) -> None:
        if self._in_file:
            if self._out is not None:
                self._out.close()
                self._out = None
            self._in_file = False
            self.file_done = True
            return
        assert self._name is not None
        value = self._value.decode("utf-8", "replace")
        if value != self.expected[self._name]:
            raise bad_request(
                "Invalid according to Policy: Policy Condition failed: "
                f'["eq", "${self._name}", ...]'
            )
        self.seen[self._name] = value

    def _end(self) -> None:
        self.ended = True

    def finish(self, min_size: int) -> None:
        """Checks only the end of the body can make: complete form, a file, and its size."""
        if not self.ended:
            raise bad_request("The multipart body ended before its closing boundary.")
        if not self.file_done:
            raise bad_request(
                "POST requires exactly one file upload per request (a part named 'file')."
            )
        if self.size < min_size:
            raise too_small(min_size)

    def discard(self) -> None:
        """Close and delete a partial file (a refused or broken upload leaves nothing)."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.tmp_path is not None:
            self.tmp_path.unlink(missing_ok=True)


def bad_request(message: str) -> UploadRejected:
    return UploadRejected(400, "InvalidArgument", message)
