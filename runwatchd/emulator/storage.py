"""The emulator's object storage: upload slots, the presigned POST and the stored objects.

Runway's upload URL behaves like an S3 presigned POST, and the emulator is strict where S3 (or
Runway's wrapper around it) is, so a client that passes here passes there: every policy field
must come back verbatim before the file, the part named `file` must be last, the size must be
within 512 B..200 MiB, and an expired slot answers 403. Bodies are parsed while they arrive, in
1 MiB reads, straight to disk with a running sha256: a 200 MiB upload costs flat memory.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from runwatchd.runway.media import MEDIA_TYPES

from .form import BodyReader, Form, UploadRejected, too_large, too_small
from .state import ApiError, issue

# A form's fields (key, policy, signature...) take ~2 KiB; any body longer than max_size plus
# this allowance must hold a file above the limit, so it is refused before a byte is read.
FIELDS_ALLOWANCE = 64 * 1024
# Runway's accepted media types are one fact; the client's local check uses the same table.
BUCKET = "runway-emulator-uploads"


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
    path: Path | None  # None when the storage keeps no files
    created_at: float

    def public(self) -> dict[str, object]:
        """What GET /_emulator/objects shows."""
        return {"filename": self.filename, "size": self.size, "sha256": self.sha256}


class Storage:
    """Slots and objects, thread-safe; files live under `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        min_size: int,
        max_size: int,
        slot_ttl: float,
        uri_ttl: float,
        clock: Callable[[], float],
        keep_files: bool = True,
    ) -> None:
        self.directory = directory
        self.min_size, self.max_size = min_size, max_size
        self.slot_ttl, self.uri_ttl = slot_ttl, uri_ttl
        self.clock = clock
        self.keep_files = keep_files
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
            problems.append(
                issue(["filename"], "Required" if filename is None else "Expected string")
            )
        elif not 3 <= len(filename) <= 255:
            problems.append(issue(["filename"], "Filename must be between 3 and 255 characters"))
        elif os.path.splitext(filename)[1].lower() not in MEDIA_TYPES:
            problems.append(issue(["filename"], "Filename must have a supported media extension"))
        if body.get("type") != "ephemeral":
            problems.append(issue(["type"], 'Invalid literal value, expected "ephemeral"'))
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
                {"bucket": BUCKET},
                ["eq", "$key", key],
                {"Content-Type": ctype},
                ["content-length-range", self.min_size, self.max_size],
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                {"x-amz-credential": credential},
                {"x-amz-date": date},
            ],
        }
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
                raise UploadRejected(
                    403, "AccessDenied", "Invalid according to Policy: Policy expired."
                )
            slot.used = True
            return slot

    def precheck(self, content_length: int | None, content_type: str | None) -> bytes:
        """Refuse what the headers alone prove wrong; returns the multipart boundary."""
        if content_length is None:
            raise UploadRejected(
                411, "MissingContentLength", "You must provide the Content-Length HTTP header."
            )
        ctype, params = parse_options_header(content_type or "")
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise UploadRejected(
                400,
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        if content_length > self.max_size + FIELDS_ALLOWANCE:
            raise too_large(self.max_size)
        if content_length < self.min_size:
            raise too_small(self.min_size)
        return boundary

    def receive(self, slot: Slot, boundary: bytes, body: BodyReader) -> StoredObject:
        """Parse the form as it arrives, store the file, and record the object."""
        ext = os.path.splitext(slot.filename)[1].lower()
        final = self.directory / f"{uuid.uuid4().hex}{ext}" if self.keep_files else None
        form = Form(slot.fields, final.with_suffix(".part") if final else None, self.max_size)
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
            raise UploadRejected(
                400, "MalformedPOSTRequest", f"Malformed multipart body: {e}"
            ) from e
        except BaseException:
            form.discard()
            raise
        if final is not None and form.tmp_path is not None:
            os.replace(form.tmp_path, final)
        obj = StoredObject(
            slot.runway_uri, slot.filename, form.size, form.digest.hexdigest(), final, self.clock()
        )
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
            if obj.path is not None:
                obj.path.unlink(missing_ok=True)
