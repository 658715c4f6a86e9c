"""`runwatchd upload`: upload files now, in parallel, and print their runway:// URIs.

Each uploaded file gets its <file>.runway.json sidecar. stdout carries only the URIs, in the
order given (or one --json document); failures go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runwatchd.cli.common import EXIT_FAILED, EXIT_OK, command_config, make_client
from runwatchd.cli.progress import FileProgress, ProgressBar
from runwatchd.config import load as configmod
from runwatchd.errors import InvalidFile, KeyRejected, RunwatchdError
from runwatchd.lifecycle import sidecar
from runwatchd.runway import media
from runwatchd.runway.client import RunwayClient

# The daemon tries a failed file again later; a one-shot upload has no later, so it is more
# patient: at a 30% error rate, 8 tries lose 1 file in 15,000 (a 50-file batch fails 1 run in
# 300), 12 tries 1 in 1.9 million (the 900 s retry deadline still bounds a real outage).
UPLOAD_ATTEMPTS = 12


def cmd_upload(args: argparse.Namespace) -> int:
    """Upload FILEs now. stdout carries only their URIs, in the order given (or one --json
    document); stderr one line per failed file, the progress bar on a terminal, and retry notices
    only with --verbose. A file failing the local checks never reaches the network."""
    cfg = command_config(args, None, required=False)
    files = list(dict.fromkeys(f.absolute() for f in args.files))
    sizes: dict[Path, int] = {}
    failures: dict[Path, str] = {}
    for f in files:
        try:
            sizes[f] = media.check_file(f).st_size
        except InvalidFile as e:
            failures[f] = str(e)
            print(f"runwatchd: {e}", file=sys.stderr)
    results: dict[Path, dict[str, Any]] = {}
    if sizes:
        try:
            _upload_files(args, cfg, sizes, results, failures)
        except KeyboardInterrupt:
            print("runwatchd: interrupted; uploads in flight were abandoned (each file with a "
                  "sidecar is done)", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)  # worker threads still blocked in a request would delay a normal exit
    if args.json:
        doc = {"uploads": [results[f] for f in files if f in results],
               "failures": [{"path": str(f), "error": failures[f]} for f in files
                            if f in failures]}
        print(json.dumps(doc, indent=2))
    return EXIT_FAILED if failures else EXIT_OK


def _upload_files(args: argparse.Namespace, cfg: configmod.Config, sizes: dict[Path, int],
                  results: dict[Path, dict[str, Any]], failures: dict[Path, str]) -> None:
    """Upload in parallel, filling `results` and `failures`; URIs are printed as they come, in
    order, unless --json. KeyRejected ends everything (every other file would fail the same)."""
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.quiet else None
    client = make_client(cfg, on_retry=(lambda *_: bar.retried()) if bar else None,
                         attempts=UPLOAD_ATTEMPTS)
    client_log = logging.getLogger("runwatchd.runway.client")
    old_level = client_log.level
    if not args.verbose:
        # A retry that ends well is no news in a one-shot command (cron mails whatever reaches
        # stderr); the bar counts retries on a terminal, and a failure still gets its line.
        client_log.setLevel(logging.ERROR)
    bar_filter = bar.log_filter() if bar else None
    if bar_filter is not None:
        for handler in logging.getLogger().handlers:
            handler.addFilter(bar_filter)
    jobs = max(1, args.jobs or cfg.runway.concurrency)
    # `jobs` transfers at once, and as many files again asking for their upload slots meanwhile:
    # for small files the API round trip is most of the time (the daemon does the same).
    client.limit_transfers(jobs)
    pool = ThreadPoolExecutor(2 * jobs, thread_name_prefix="runwatchd-upload")
    wait = True
    try:
        # No separate key check: the first upload's slot request proves the key, and a 401
        # there is KeyRejected, one clear line (a check first cost a round trip per command).
        handles = {f: bar.track(f.name, size) if bar else None for f, size in sizes.items()}
        futures = {f: pool.submit(_upload_one, client, f, handles[f]) for f in sizes}
        for f, fut in futures.items():
            try:
                results[f] = fut.result()
            except KeyRejected:
                raise
            except RunwatchdError as e:
                if args.verbose:  # -v promises tracebacks (redacted: the secret filter)
                    logging.getLogger("runwatchd").debug("uploading %s failed", f, exc_info=True)
                text = str(e)
                failures[f] = text if text.startswith(f"{f.name}:") else f"{f.name}: {text}"
                if bar:
                    bar.clear()
                print(f"runwatchd: {failures[f]}", file=sys.stderr)
            else:
                if not args.json:
                    if bar and sys.stdout.isatty():
                        bar.clear()
                    print(results[f]["runway_uri"], flush=True)
    except KeyboardInterrupt:
        wait = False  # Ctrl-C must not wait for a 200 MB upload to end
        raise
    finally:
        pool.shutdown(wait=wait, cancel_futures=True)
        client.close()
        if bar:
            bar.close()
        if bar_filter is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(bar_filter)
        client_log.setLevel(old_level)


def _upload_one(client: RunwayClient, path: Path, progress: FileProgress | None) -> dict[str, Any]:
    ok = False
    try:
        result = client.upload(path, progress=progress)
        data = sidecar.build_sidecar(path, runway_uri=result.runway_uri,
                                     uploaded_at=result.uploaded_at, size=result.size,
                                     mtime_ns=result.mtime_ns, sha256=result.sha256)
        try:
            sidecar.write_sidecar(path, data)
        except OSError as e:
            raise RunwatchdError(f"{path.name}: uploaded as {result.runway_uri}, but its sidecar "
                                 f"cannot be written ({e.strerror or e})") from e
        ok = True
    finally:
        if progress is not None:
            progress.finish(ok)
    return {"path": str(path), "sidecar": str(sidecar.sidecar_path(path)), **data}
