#!/usr/bin/env bash
# Builds the two fresh-server images tests/install/test_in_container.py installs Berth
# into: Debian bookworm with systemd as PID 1 (berth-install-test/systemd:1), and with
# SysV init and Debian's docker.io already there (berth-install-test/sysvinit:2, a server
# whose Docker engine install.sh must use as it is). No registry is reachable from the
# test machines, so each is a debootstrapped root filesystem, imported.
#
# Idempotent: an image that already exists is left alone.
set -euo pipefail

CACHE=${BERTH_INSTALL_TEST_CACHE:-/var/cache/berth-install-test}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=openssh-server,ca-certificates,curl,python3,iproute2,procps,sudo
IMAGES=(
    "berth-install-test/systemd:1|systemd,systemd-sysv,dbus|"
    "berth-install-test/sysvinit:2|sysvinit-core,sysvinit-utils|docker.io"
)

build() {  # TAG DEBOOTSTRAP-PACKAGES APT-PACKAGES
    local tag=$1 include=$2 extra=$3 rootfs
    rootfs="$CACHE/$(echo "$tag" | tr '/:' '--')"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    echo "debootstrap bookworm for $tag (a few minutes)"
    debootstrap --variant=minbase --include="$BASE,$include" bookworm "$rootfs" "$MIRROR" \
        >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log"; exit 1; }
    if [ -n "$extra" ]; then
        # debootstrap's resolver is weak; apt inside the root filesystem adds the rest.
        mount -t proc proc "$rootfs/proc"
        cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
        chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$extra" >>"$rootfs.log" 2>&1 \
            || { umount "$rootfs/proc"; tail -n 30 "$rootfs.log"; exit 1; }
        umount "$rootfs/proc"
        if [ -f "$rootfs/etc/init.d/docker" ]; then
            # Test containers lack CAP_SYS_RESOURCE: raising limits fails there, and with
            # it the engine's start at boot. A limit not raised is no harm in a test.
            sed -i -e 's/^\(\s*ulimit -n 1048576\)$/\1 || true/' \
                -e 's/^\(\s*ulimit -p unlimited\)$/\1 || true/' "$rootfs/etc/init.d/docker"
        fi
    fi
    chroot "$rootfs" apt-get clean
    tar -C "$rootfs" -c . | docker import -c 'CMD ["/sbin/init"]' - "$tag" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
    echo "install test image $tag built"
}

for entry in "${IMAGES[@]}"; do
    IFS='|' read -r tag include extra <<<"$entry"
    if docker image inspect "$tag" >/dev/null 2>&1; then
        echo "install test image $tag present"
        continue
    fi
    build "$tag" "$include" "$extra"
done
