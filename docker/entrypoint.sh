#!/bin/sh
# The image's entrypoint: run the command as the user runwatchd, with the uid and gid that own
# the host's folders (PUID, PGID, as linuxserver.io images and NAS appliances expect), and
# write a starter config on the first start.
#
# Started as root (the default), it moves runwatchd to PUID:PGID, hands it /state and the
# config, and drops to it with setpriv (util-linux, already in the slim image: no gosu needed).
# Started as another user (docker run --user, a rootless engine), there is nothing to adjust.
set -eu

config=${RUNWATCHD_CONFIG:-/config/config.toml}
example=${RUNWATCHD_EXAMPLE_CONFIG:-/usr/local/share/runwatchd/config.toml}
state=${STATE_DIRECTORY:-/state}

# `docker run IMAGE --help` and `docker run IMAGE status` mean runwatchd's.
case "${1:-}" in
    -*|run|scan|upload|status|check-config|init|retry|emulator|demo|completion|man)
        set -- runwatchd "$@" ;;
esac

first_start() {
    if [ ! -e "$config" ]; then
        mkdir -p "$(dirname "$config")"
        cp "$example" "$config"
        echo "entrypoint: wrote $config from the example; name your folders in it" >&2
        return 0
    fi
    return 1
}

if [ "$(id -u)" != 0 ]; then
    first_start || true
    exec "$@"
fi

PUID=${PUID:-1000}
PGID=${PGID:-1000}
case "$PUID:$PGID" in
    *[!0-9:]*|:*|*:)
        echo "entrypoint: PUID and PGID must be numbers, got PUID=$PUID PGID=$PGID" >&2
        exit 64 ;;
esac
if [ "$(id -g runwatchd)" != "$PGID" ]; then
    groupmod --non-unique --gid "$PGID" runwatchd
fi
if [ "$(id -u runwatchd)" != "$PUID" ]; then
    # Also re-owns the files in its home, /state: the journal follows the user.
    usermod --non-unique --uid "$PUID" runwatchd
fi
chown runwatchd:runwatchd "$state"
if first_start; then
    chown runwatchd:runwatchd "$config"
fi
export HOME="$state"
exec setpriv --reuid=runwatchd --regid=runwatchd --init-groups -- "$@"
