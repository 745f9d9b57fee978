#!/usr/bin/env bash
# Builds the stand-in base images the tests use in place of the official language images.
#
# No container registry is reachable from the test machines, so `python:X-slim`,
# `node:X-slim` and `nginx:X` cannot be pulled. One Debian bookworm root filesystem made
# with debootstrap carries python3 (with venv), nodejs + npm and nginx, and is imported
# under the tags the test configuration points the buildpacks at. The product's own
# defaults stay the official images; only the tests' berth.toml names these tags.
# On top of it, the add-on stand-ins: Debian's postgresql and redis-server with
# entrypoints honouring the official postgres and redis images' contract
# (tests/support/stand-in/{postgres,redis}/).
#
# Idempotent: an image that already exists is left alone.
set -euo pipefail

TAG=${BERTH_STAND_IN_TAG:-berth-stand-in/bookworm:1}
CACHE=${BERTH_STAND_IN_CACHE:-/var/cache/berth-stand-in}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# debootstrap's resolver cannot satisfy npm's web of virtual node-* packages, so the
# rootfs gets the base set first and apt (a real resolver) adds the rest inside it.
PACKAGES=python3,python3-venv,python3-pip,ca-certificates,nginx-light,curl
APT_EXTRA=(nodejs npm)

HERE=$(cd "$(dirname "$0")" && pwd)
ADDON_IMAGES=("postgres:berth-stand-in/postgres:15" "redis:berth-stand-in/redis:7")

build_addon_images() {
    local entry kind tag
    for entry in "${ADDON_IMAGES[@]}"; do
        kind=${entry%%:*}
        tag=${entry#*:}
        if docker image inspect "$tag" >/dev/null 2>&1; then
            echo "stand-in image $tag present"
            continue
        fi
        echo "building $tag"
        docker build -q --build-arg BASE="$TAG" -t "$tag" "$HERE/stand-in/$kind" >/dev/null
        echo "stand-in image $tag built"
    done
}

# The `-alpine` stand-ins: each add-on stand-in with busybox's `timeout` in place of
# coreutils' (tests/support/stand-in/busybox-timeout/).
BUSYBOX_IMAGES=("berth-stand-in/postgres:15:berth-stand-in/postgres:15-alpine"
                "berth-stand-in/redis:7:berth-stand-in/redis:7-alpine")
build_busybox_images() {
    local entry base tag
    for entry in "${BUSYBOX_IMAGES[@]}"; do
        tag=${entry#*:*:}
        base=${entry%":$tag"}
        if docker image inspect "$tag" >/dev/null 2>&1; then
            echo "stand-in image $tag present"
            continue
        fi
        docker build -q --build-arg BASE="$base" -t "$tag" "$HERE/stand-in/busybox-timeout" \
            >/dev/null
        echo "stand-in image $tag built"
    done
}

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "stand-in image $TAG present"
    build_addon_images
    build_busybox_images
    exit 0
fi

rootfs="$CACHE/rootfs"
if [ ! -f "$CACHE/rootfs.done" ]; then
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    echo "debootstrap bookworm into $rootfs (a few minutes)"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log"; exit 1; }
    echo "apt-get install ${APT_EXTRA[*]} inside the rootfs"
    mount -t proc proc "$rootfs/proc"
    trap 'umount "$rootfs/proc" 2>/dev/null || true' EXIT
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${APT_EXTRA[@]}" \
        >>"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log"; exit 1; }
    umount "$rootfs/proc"
    trap - EXIT
    # Debian's nginx starts a default site on :80; the static buildpack writes its own
    # config, so drop the default to keep the image close to the official one.
    rm -f "$rootfs/etc/nginx/sites-enabled/default"
    chroot "$rootfs" apt-get clean
    touch "$CACHE/rootfs.done"
fi
echo "importing $rootfs as $TAG"
tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "stand-in image $TAG built"
build_addon_images
build_busybox_images
