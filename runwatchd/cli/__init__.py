"""The `runwatchd` command: its commands, the progress bar, the demo."""
