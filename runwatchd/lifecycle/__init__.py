"""One file's way: states and outcomes, observe -> decide -> apply, upload, recovery, sidecar."""
