#!/usr/bin/env bash
# Entrypoint of the redis stand-in image, honouring the official image's documented
# contract (written for this image, not copied from it):
# - Flags (`--requirepass x`) or a `.conf` file as the first word run redis-server with
#   them; any other command is exec'd as it is (`redis-cli ...`).
# - Started as root, it gives /data (the working directory, where the server writes its
#   RDB and AOF files) to the redis user and runs the server as that user, umask 0077.
# - Like the official build, protected mode is off (the server answers clients on other
#   containers; `--requirepass` is how access is controlled).
set -Eeuo pipefail

if [ $# -eq 0 ]; then
    set -- redis-server
elif [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "${1:-}" != redis-server ]; then
    exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
    find /data \! -user redis -exec chown redis:redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" redis-server "$@"
fi

umask 0077
if [ "${1:-}" != "" ] && [ "${1%.conf}" != "$1" ]; then
    conf=$1
    shift
    exec redis-server "$conf" --protected-mode no "$@"
fi
exec redis-server --protected-mode no "$@"
