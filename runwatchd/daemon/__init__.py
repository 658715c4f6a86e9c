"""The daemon: wiring and lifecycle, scheduler, reconcile scans, outcome book, reload."""
