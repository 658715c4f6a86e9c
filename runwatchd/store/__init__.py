"""The daemon's memory: the Store protocol and FileRecord, and its backends."""
