"""Finding files: observers, filters, directory walks, mounts, folders, the settle table."""
