"""Baseline: the official Python SDK (runwayml) uploading files one after another.

    python sdk_loop.py --mode path|file [--sidecar] FILE...

`--mode path` passes a pathlib.Path (what Runway's guide shows), `--mode file` an open file
object. `--sidecar` writes `<file>.runway.json` with the URI after each upload, the way a
script would keep the result. Prints "call SECONDS": the loop alone, without interpreter start.
Key and base URL come from RUNWAYML_API_SECRET and RUNWAYML_BASE_URL, as the SDK reads them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runwayml import RunwayML


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("path", "file"), required=True)
    p.add_argument("--sidecar", action="store_true")
    p.add_argument("files", nargs="+", type=Path)
    args = p.parse_args()
    client = RunwayML()
    start = time.perf_counter()
    for path in args.files:
        if args.mode == "path":
            upload = client.uploads.create_ephemeral(file=path)
        else:
            with open(path, "rb") as f:
                upload = client.uploads.create_ephemeral(file=f)
        if args.sidecar:
            doc = {"runway_uri": upload.uri, "uploaded_at": time.time()}
            Path(f"{path}.runway.json").write_text(json.dumps(doc))
    print(f"call {time.perf_counter() - start:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
