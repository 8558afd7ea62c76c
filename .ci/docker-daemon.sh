#!/usr/bin/env bash
# Makes sure a Docker daemon answers, for `make test-docker` (CI and developers).
#
# Installs Debian's docker.io (daemon and client) and debootstrap (the test builds
# its Debian+Python base with it) when missing, then starts `dockerd` in the
# background unless a daemon already answers, and waits until `docker info` works.
# The daemon is left running (it is shared by later runs); its log is
# $DOCKERD_LOG.  Exits non-zero, with the daemon's last log lines, if it does
# not come up within $DOCKERD_WAIT_S seconds.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/pilotstate-dockerd.log}
DOCKERD_WAIT_S=${DOCKERD_WAIT_S:-60}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "docker-daemon: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    echo "docker-daemon: a daemon already answers"
    exit 0
fi

echo "docker-daemon: starting dockerd (log: $DOCKERD_LOG)"
# setsid + nohup: the daemon outlives this script and the shell that ran it.
as_root setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &

for _ in $(seq "$DOCKERD_WAIT_S"); do
    if docker info >/dev/null 2>&1; then
        echo "docker-daemon: ready ($(docker version --format 'server {{.Server.Version}}'))"
        exit 0
    fi
    sleep 1
done
echo "docker-daemon: dockerd did not answer within ${DOCKERD_WAIT_S}s; last log lines:" >&2
tail -n 30 "$DOCKERD_LOG" >&2 || true
exit 1
