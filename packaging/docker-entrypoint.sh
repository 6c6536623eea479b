#!/bin/sh
# Starts queue-server with the arguments given, adding the password from WEIR_PASSWORD when set
# (kept out of the image and out of `docker inspect`'s command line).
set -eu
if [ -n "${WEIR_PASSWORD:-}" ]; then
    set -- "$@" --requirepass "$WEIR_PASSWORD"
fi
exec /usr/local/bin/queue-server "$@"
