"""Finding files: observers, filters, directory walks, mounts, folders, the settle table."""

# watchdog 7.1 reports an inotify queue overflow only as a WARNING on this logger (no event
# reaches a handler): watch/observers.py hooks it to rescan, service/logs.py keeps it audible.
OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
