"""Baseline: the hot-folder script people write from Runway's upload guide.

watchdog calls `on_created`, the handler uploads the file with the official SDK
(`create_ephemeral(Path(...))`, as the guide shows) and writes `<file>.runway.json`. It is the
charitable version: it filters media extensions and catches exceptions, so one failed upload
does not kill watchdog's observer thread. What it lacks is any wait for the file to be complete.

    python naive_watch.py DIR

Prints "watching" once the observer runs, then one line per handled file:
"ok PATH" or "error PATH: message".
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from runwayml import RunwayML
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

MEDIA = {".jpg", ".jpeg", ".png", ".webp", ".mp4", ".mov", ".webm", ".mp3", ".wav", ".flac",
         ".m4a"}


class UploadOnCreate(FileSystemEventHandler):
    def __init__(self, client: RunwayML) -> None:
        self.client = client

    def on_created(self, event) -> None:
        path = Path(event.src_path)
        if event.is_directory or path.suffix.lower() not in MEDIA:
            return
        try:
            upload = self.client.uploads.create_ephemeral(file=path)
            doc = {"runway_uri": upload.uri, "uploaded_at": time.time()}
            Path(f"{path}.runway.json").write_text(json.dumps(doc))
            print(f"ok {path}", flush=True)
        except Exception as e:  # noqa: BLE001 - an escaping exception kills the observer
            body = getattr(e, "body", None)
            code = body.split("<Code>")[1].split("</Code>")[0] if isinstance(body, str) and (
                "<Code>" in body) else ""
            detail = f"{type(e).__name__}: {e}" + (f" ({code})" if code else "")
            print(f"error {path}: {detail}".replace("\n", " "), flush=True)


def main() -> int:
    folder = sys.argv[1]
    observer = Observer()
    observer.schedule(UploadOnCreate(RunwayML()), folder, recursive=False)
    observer.start()
    print("watching", flush=True)
    try:
        while observer.is_alive():
            observer.join(1)
    except KeyboardInterrupt:
        pass
    observer.stop()
    observer.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
