#!/bin/bash
# Role provisioning for master,slave: rendered by builder from roles-config/.
# The one source of truth for what the role installs and configures: the
# kickstart's %post runs it, and so does Packer's shell provisioner.
#   install    add the repos and install the role's packages (yum: CentOS only)
#   configure  write the role's files, open its ports, set unit states
#              (runs on any systemd root, chrooted or booted)
#   seal       remove what a template must not carry; run last, before export
set -euo pipefail
shopt -s nullglob
umask 022

log() { printf 'builder-provision: %s\n' "$*"; }

# write_file PATH MODE OWNER CONTENT: atomically, creating parent directories.
write_file() {
    local dir tmp
    dir=$(dirname "$1")
    install -d -m 0755 "$dir"
    tmp=$(mktemp "$dir/.builder.XXXXXX")
    printf '%s' "$4" > "$tmp"
    chmod "$2" "$tmp"
    chown "$3" "$tmp"
    mv -f "$tmp" "$1"
}

unit_installed() {
    local dir
    for dir in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
        [ -e "$dir/$1.service" ] && return 0
    done
    return 1
}

write_repos() {
    # CentOS-Base.repo points at mirrorlist.centos.org, gone since CentOS 7's end
    # of life; builder.repo carries the configured base repo instead.
    if [ -e /etc/yum.repos.d/CentOS-Base.repo ]; then
        mv -f /etc/yum.repos.d/CentOS-Base.repo /etc/yum.repos.d/CentOS-Base.repo.builder-disabled
    fi
    write_file /etc/yum.repos.d/builder.repo 0644 root '# Written by builder from roles-config/.

[base]
name=CentOS-7.9.2009 - Base
baseurl=http://vault.centos.org/7.9.2009/os/x86_64/
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

[updates]
name=CentOS-7.9.2009 - Updates
baseurl=http://vault.centos.org/7.9.2009/updates/x86_64/
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

[extras]
name=CentOS-7.9.2009 - Extras (docker)
baseurl=http://vault.centos.org/7.9.2009/extras/x86_64/
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

[mesosphere]
name=Mesosphere Packages for EL 7 - x86_64
baseurl=http://repos.mesosphere.io/el/7/x86_64/
enabled=1
gpgcheck=1
gpgkey=http://repos.mesosphere.io/el/RPM-GPG-KEY-mesosphere

[mesosphere-noarch]
name=Mesosphere Packages for EL 7 - noarch
baseurl=http://repos.mesosphere.io/el/7/noarch/
enabled=1
gpgcheck=1
gpgkey=http://repos.mesosphere.io/el/RPM-GPG-KEY-mesosphere
'
}

install_packages() {
    log "install: master,slave"
    write_repos
    rpm --import file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7
    rpm --import http://repos.mesosphere.io/el/RPM-GPG-KEY-mesosphere
    if [ -n "${BUILDER_MIRROR:-}" ]; then
        # builder build --mirror: the mirror copied into this machine, and nothing else.
        log "install: from the mirror in $BUILDER_MIRROR only"
        write_file /etc/yum.repos.d/builder-mirror.repo 0644 root "[builder-mirror]
name=builder mirror
baseurl=file://$BUILDER_MIRROR
enabled=1
gpgcheck=1
"
        yum -y --disablerepo='*' --enablerepo=builder-mirror install @core cloud-init cloud-utils-growpart firewalld java-1.8.0-openjdk-headless mesosphere-zookeeper mesos marathon chronos docker
        rm -f /etc/yum.repos.d/builder-mirror.repo
        rm -rf "$BUILDER_MIRROR"
    else
        yum -y install @core cloud-init cloud-utils-growpart firewalld java-1.8.0-openjdk-headless mesosphere-zookeeper mesos marathon chronos docker
    fi
    yum clean all
}

configure_role() {
    log "configure: master,slave"
    write_repos
    write_file /etc/mesos-master/work_dir 0644 root '/var/lib/mesos
'
    write_file /etc/mesos-slave/containerizers 0644 root 'docker,mesos
'
    write_file /etc/mesos-slave/executor_registration_timeout 0644 root '5mins
'
    write_file /etc/mesos-slave/work_dir 0644 root '/var/lib/mesos
'
    # The image opens only SSH; first boot's seed gives the cluster's ports to the
    # cluster's networks and the UIs to the admin networks.
    if command -v firewall-offline-cmd >/dev/null 2>&1; then
        firewall-offline-cmd --add-service=ssh >/dev/null 2>&1 ||
            firewall-offline-cmd --query-service=ssh >/dev/null
    else
        log "configure: no firewalld here"
    fi
    # The Mesos-stack packages enable their units on install (the mesos RPM
    # both mesos-master and mesos-slave). Nothing may start before first boot
    # writes the node's configuration: disable them all; mask the units this
    # role never runs, for good.
    local unit
    for unit in zookeeper mesos-master mesos-slave marathon chronos docker; do
        if unit_installed "$unit"; then
            systemctl disable "$unit.service"
        fi
    done
    write_file /etc/builder/roles 0644 root 'master,slave
'
}

seal_image() {
    log "seal: master,slave"
    local file
    # The build's own SSH key: only its public half was ever here, in
    # authorized_keys and in the installer's copies of the kickstart.
    for file in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
        [ -e "$file" ] || continue
        sed -i '/ builder-build-key$/d' "$file"
    done
    for file in /root/*ks.cfg; do
        sed -i '/builder-build-key/d' "$file"
    done
    rm -f /etc/ssh/ssh_host_*
    # An empty machine-id: systemd makes a new one at first boot.
    if [ -e /etc/machine-id ]; then
        : > /etc/machine-id
    fi
    rm -f /var/lib/dbus/machine-id
    rm -rf /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/data /var/lib/cloud/sem
    for file in /etc/sysconfig/network-scripts/ifcfg-*; do
        [ "$file" = /etc/sysconfig/network-scripts/ifcfg-lo ] || sed -i '/^\(HWADDR\|UUID\)=/d' "$file"
    done
    rm -f /var/lib/dhclient/* /var/lib/NetworkManager/*.lease /var/lib/dhcp/*.leases
    find /var/log -type f -exec truncate -s 0 {} +
    rm -rf /var/log/journal/*
    rm -f /root/.bash_history /home/*/.bash_history
}

usage() {
    echo "usage: $0 install|configure|seal..." >&2
    exit 2
}

[ $# -ge 1 ] || usage
for step in "$@"; do
    case $step in
        install) install_packages ;;
        configure) configure_role ;;
        seal) seal_image ;;
        *) usage ;;
    esac
done
