"""runwatchd: a hot-folder daemon for Runway."""

__version__ = "0.1.0"
