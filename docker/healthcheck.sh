#!/bin/sh
# The image's HEALTHCHECK: healthy while the daemon's main loop keeps refreshing its status
# (every 2 s; `runwatchd status` calls it not running once it is 30 s old, so a wedged daemon
# turns unhealthy). Run as runwatchd, so that reading the journal never leaves a root-owned
# file in /state.
set -eu
if [ "$(id -u)" = 0 ]; then
    set -- setpriv --reuid=runwatchd --regid=runwatchd --init-groups --
fi
"$@" runwatchd status --json |
    python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["running"] else 1)'
