#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine; installs what it needs first.
#   ./run.sh build   the main job: master and slave images from the embedded default config
#   ./run.sh test    the whole test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"

VENV=${BUILDER_VENV:-.venv}
# Everything builder and its tests run, as Debian 12 packages.
APT_PACKAGES=(
    python3 python3-venv python3-pip
    packer qemu-system-x86 qemu-utils ovmf
    xorriso mtools createrepo-c isomd5sum cloud-init cloud-image-utils
    openssh-client e2fsprogs dosfstools fdisk mount util-linux gzip
    debootstrap busybox-static isolinux syslinux-common extlinux grub-efi-amd64-bin grub-pc-bin
    nasm rpm file xz-utils zstd shellcheck openssl openjdk-17-jre-headless openjdk-17-jdk-headless
    dnf dnf-plugins-core gnupg
)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_system_packages() {
    local missing=() package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "run.sh: installing ${missing[*]}" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

install_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]"
}

case ${1:-} in
    build)
        install_system_packages
        install_python
        "$VENV/bin/builder" doctor || true
        # The cluster's own copy of the embedded default (its secrets live beside it, never
        # in the package or the repository): made once, then kept (BUILDER_CONFIG=DIR: another).
        CONFIG="${BUILDER_CONFIG:-cluster-config}"
        [ -d "$CONFIG" ] || "$VENV/bin/builder" init "$CONFIG"
        [ -f "$CONFIG/secrets.yaml" ] || "$VENV/bin/builder" --config "$CONFIG" secrets init
        "$VENV/bin/builder" --config "$CONFIG" validate
        "$VENV/bin/builder" --config "$CONFIG" seed --all
        # Downloads the CentOS 7.9.2009 ISO (about 1 GB, once) and bakes both images.
        "$VENV/bin/builder" --config "$CONFIG" build master slave "${@:2}"
        ;;
    test)
        install_system_packages
        install_python
        # Two workers, each taking whole modules (a module's VM or build fixture runs once).
        "$VENV/bin/python" -m pytest -n 2 --dist loadscope --durations=15 "${@:2}"
        ;;
    *)
        echo "usage: ./run.sh build|test [pytest args]" >&2
        exit 2
        ;;
esac
