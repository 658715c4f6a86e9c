"""The emulator's object storage: upload slots, the presigned POST and the stored objects.

Runway's upload URL behaves like an S3 presigned POST, and the emulator is strict where S3 (or
Runway's wrapper around it) is, so a client that passes here passes there: every policy field
must come back verbatim before the file, the part named `file` must be last, the size must be
within 512 B..200 MiB, and an expired slot answers 403. Bodies are parsed while they arrive, in
1 MiB reads, straight to disk with a running sha256: a 200 MiB upload costs flat memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .state import ApiError, issue

CHUNK = 1024 * 1024
# A form's fields (key, policy, signature...) take ~2 KiB; any body longer than max_size plus
# this allowance must hold a file above the limit, so it is refused before a byte is read.
FIELDS_ALLOWANCE = 64 * 1024
MAX_FIELD_BYTES = 16 * 1024
MEDIA_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mp3": "audio/mpeg", ".wav": "audio/wav", ".flac": "audio/flac", ".m4a": "audio/mp4",
    ".aac": "audio/aac",
}  # fmt: skip
BUCKET = "runway-emulator-uploads"


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


def iso_z(ts: float) -> str:
    """A UTC timestamp as Runway writes them: 2026-11-24T10:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Slot:
    """One presigned upload: usable once, until `expires_at`."""

    slot_id: str
    filename: str
    runway_uri: str
    fields: dict[str, str]
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class StoredObject:
    """A completed upload; `runway_uri` is valid until created_at + uri_ttl."""

    runway_uri: str
    filename: str
    size: int
    sha256: str
    path: Path
    created_at: float

    def public(self) -> dict[str, object]:
        """What GET /_emulator/objects shows."""
        return {"filename": self.filename, "size": self.size, "sha256": self.sha256}


class Storage:
    """Slots and objects, thread-safe; files live under `directory`."""

    def __init__(
        self, directory: Path, *, min_size: int, max_size: int, slot_ttl: float, uri_ttl: float,
        clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.directory = directory
        self.min_size, self.max_size = min_size, max_size
        self.slot_ttl, self.uri_ttl = slot_ttl, uri_ttl
        self.clock = clock
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._objects: dict[str, StoredObject] = {}

    def create_slot(self, body: object, base_url: str, *, born_expired: bool) -> dict[str, object]:
        """Validate a POST /v1/uploads body and hand out a slot; the reply body is returned."""
        if not isinstance(body, dict):
            raise ApiError(400, "Validation of body failed", [issue([], "Expected object")])
        problems = []
        filename = body.get("filename")
        if not isinstance(filename, str):
            problems.append(issue(["filename"], "Required" if filename is None else "Expected string"))
        elif not 3 <= len(filename) <= 255:
            problems.append(issue(["filename"], "Filename must be between 3 and 255 characters"))
        elif os.path.splitext(filename)[1].lower() not in MEDIA_TYPES:
            problems.append(issue(["filename"], "Filename must have a supported media extension"))
        if body.get("type") != "ephemeral":
            problems.append(issue(["type"], "Invalid literal value, expected \"ephemeral\""))
        if problems:
            raise ApiError(400, "Validation of body failed", problems)
        assert isinstance(filename, str)
        now = self.clock()
        expires = now - 1 if born_expired else now + self.slot_ttl
        slot_id = secrets.token_urlsafe(18)
        key = f"uploads/{uuid.uuid4()}/{filename}"
        date = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        credential = f"EMULATORKEY/{date[:8]}/us-east-1/s3/aws4_request"
        ctype = MEDIA_TYPES[os.path.splitext(filename)[1].lower()]
        policy_doc = {
            "expiration": iso_z(expires),
            "conditions": [
                {"bucket": BUCKET}, ["eq", "$key", key], {"Content-Type": ctype},
                ["content-length-range", self.min_size, self.max_size],
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": credential},
                {"x-amz-date": date},
            ],
        }  # fmt: skip
        policy = base64.b64encode(json.dumps(policy_doc).encode()).decode()
        fields = {
            "key": key,
            "Content-Type": ctype,
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": credential,
            "x-amz-date": date,
            "policy": policy,
            "x-amz-signature": hmac.new(self._signing_key, policy.encode(), "sha256").hexdigest(),
        }
        slot = Slot(slot_id, filename, f"runway://upload/{uuid.uuid4()}", fields, expires)
        with self._lock:
            self._slots[slot_id] = slot
        return {
            "uploadUrl": f"{base_url}/_storage/upload/{slot_id}",
            "fields": dict(fields),
            "runwayUri": slot.runway_uri,
        }

    def claim(self, slot_id: str) -> Slot:
        """Take a slot for one upload attempt: unknown, expired or used slots answer 403."""
        with self._lock:
            slot = self._slots.get(slot_id)
            if slot is None:
                raise UploadRejected(403, "AccessDenied", "Invalid upload URL")
            if slot.used:
                raise UploadRejected(403, "AccessDenied", "This upload URL was already used")
            if self.clock() >= slot.expires_at:
                raise UploadRejected(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
            slot.used = True
            return slot

    def precheck(self, content_length: int | None, content_type: str | None) -> bytes:
        """Refuse what the headers alone prove wrong; returns the multipart boundary."""
        if content_length is None:
            raise UploadRejected(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        ctype, params = parse_options_header(content_type or "")
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise UploadRejected(
                400, "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )  # fmt: skip
        if content_length > self.max_size + FIELDS_ALLOWANCE:
            raise _too_large(self.max_size)
        if content_length < self.min_size:
            raise _too_small(self.min_size)
        return boundary

    def receive(self, slot: Slot, boundary: bytes, body: BodyReader) -> StoredObject:
        """Parse the form as it arrives, store the file, and record the object."""
        final = self.directory / f"{uuid.uuid4().hex}{os.path.splitext(slot.filename)[1].lower()}"
        form = _Form(slot, final.with_suffix(".part"), self.max_size)
        parser = MultipartParser(boundary, form.callbacks())
        try:
            while True:
                chunk = body.read()
                if not chunk:
                    break
                parser.write(chunk)
            form.finish(self.min_size)
        except MultipartParseError as e:
            form.discard()
            raise UploadRejected(400, "MalformedPOSTRequest", f"Malformed multipart body: {e}") from e
        except BaseException:
            form.discard()
            raise
        os.replace(form.tmp_path, final)
        obj = StoredObject(slot.runway_uri, slot.filename, form.size, form.digest.hexdigest(), final, self.clock())
        with self._lock:
            self._objects[obj.runway_uri] = obj
        return obj

    def lookup(self, runway_uri: str) -> StoredObject | None:
        """The object behind a runway:// URI, or None if unknown or expired."""
        with self._lock:
            obj = self._objects.get(runway_uri)
        if obj is None or self.clock() >= obj.created_at + self.uri_ttl:
            return None
        return obj

    def objects(self) -> dict[str, StoredObject]:
        """Every stored object, expired ones included."""
        with self._lock:
            return dict(self._objects)

    def clear(self) -> None:
        """Forget every slot and object and delete their files."""
        with self._lock:
            objects, self._objects, self._slots = list(self._objects.values()), {}, {}
        for obj in objects:
            obj.path.unlink(missing_ok=True)


class BodyReader:
    """Reads exactly Content-Length bytes from the socket in chunks of at most 1 MiB."""

    def __init__(self, rfile: BinaryIO, length: int, on_bytes: Callable[[int], None]) -> None:
        self.rfile, self.remaining, self.on_bytes = rfile, length, on_bytes

    def read(self, limit: int = CHUNK) -> bytes:
        """The next chunk, b"" at the end; a client gone mid-body raises ConnectionError."""
        if self.remaining <= 0:
            return b""
        # read1: one recv of whatever has arrived, so memory stays at one chunk per connection
        chunk = self.rfile.read1(min(limit, self.remaining))  # type: ignore[attr-defined]
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


def _too_large(max_size: int) -> UploadRejected:
    return UploadRejected(400, "EntityTooLarge", f"Your proposed upload exceeds the maximum allowed size ({max_size} bytes)")


def _too_small(min_size: int) -> UploadRejected:
    return UploadRejected(400, "EntityTooSmall", f"Your proposed upload is smaller than the minimum allowed size ({min_size} bytes)")


class _Form:
    """Callbacks for python-multipart that enforce the presigned-POST rules part by part."""

    def __init__(self, slot: Slot, tmp_path: Path, max_size: int) -> None:
        self.expected = slot.fields
        self.seen: dict[str, str] = {}
        self.tmp_path, self.max_size = tmp_path, max_size
        self.digest = hashlib.sha256()
        self.size = 0
        self.file_done = False
        self.ended = False
        self._out: BinaryIO | None = None
        self._headers: dict[str, str] = {}
        self._hname = self._hvalue = b""
        self._name: str | None = None
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_end": self._end,
        }  # type: ignore[return-value]  # fmt: skip

    def _part_begin(self) -> None:
        if self.file_done:
            raise _bad("The file must be the last field of the form; nothing may follow it.")
        self._headers, self._name, self._value = {}, None, bytearray()
        self._hname = self._hvalue = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._hname.decode("latin-1").strip().lower()] = self._hvalue.decode("latin-1").strip()
        self._hname = self._hvalue = b""

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise _bad("Every part needs Content-Disposition: form-data with a name.")
        self._name = name.decode("utf-8", "replace")
        if self._name == "file":
            missing = [k for k in self.expected if k not in self.seen]
            if missing:
                raise _bad(f"Bucket POST must contain a field named '{missing[0]}' before the file "
                           f"(missing: {', '.join(missing)}).")  # fmt: skip
            self._out = open(self.tmp_path, "wb")  # noqa: SIM115  closed in _part_end/discard
        elif self._name not in self.expected:
            raise _bad(f"Invalid according to Policy: Extra input fields: {self._name}")
        elif self._name in self.seen:
            raise _bad(f"Field '{self._name}' was sent twice.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            piece = data[start:end]
            self.size += len(piece)
            if self.size > self.max_size:
                raise _too_large(self.max_size)
            self.digest.update(piece)
            self._out.write(piece)
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise _bad(f"Field '{self._name}' is too long.")

    def _part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            self.file_done = True
            return
        assert self._name is not None
        value = self._value.decode("utf-8", "replace")
        if value != self.expected[self._name]:
            raise _bad(f'Invalid according to Policy: Policy Condition failed: ["eq", "${self._name}", ...]')
        self.seen[self._name] = value

    def _end(self) -> None:
        self.ended = True

    def finish(self, min_size: int) -> None:
        """Checks only the end of the body can make: complete form, a file, and its size."""
        if not self.ended:
            raise _bad("The multipart body ended before its closing boundary.")
        if not self.file_done:
            raise _bad("POST requires exactly one file upload per request (a part named 'file').")
        if self.size < min_size:
            raise _too_small(min_size)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self.tmp_path.unlink(missing_ok=True)


def _bad(message: str) -> UploadRejected:
    return UploadRejected(400, "InvalidArgument", message)
