#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 machine, as root: Debian packages and a virtual
# environment (.venv) with the pinned Python packages of requirements.lock. Safe to run again:
# it installs only what is missing or changed.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (the testbed creates network namespaces and loads eBPF programs)" >&2
    exit 1
fi

debian_packages=(
    python3 python3-venv python3-dev
    clang llvm libbpf-dev bpftool gcc-multilib
    nginx haproxy openssh-server openssh-client
    iproute2 iputils-ping curl ethtool tcpdump procps psmisc git wrk
)
missing=()
for p in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Do not let the packages start their system-wide services: the harness runs its own instances.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.miresga
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy -eq 0 ] && cp /usr/sbin/policy-rc.d.miresga /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ $had_policy -eq 0 ] && rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.miresga
fi

# The BPF file system, for pinned maps and programs of the emulated switch and the agents.
if ! mountpoint -q /sys/fs/bpf; then
    mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf
fi

# Python 3.11 is required (the pins are for it).
py=${MIRESGA_PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    echo "setup: $py is not Python 3.11; set MIRESGA_PYTHON to a Python 3.11 interpreter" >&2
    exit 1
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating the virtual environment .venv (pinned versions from requirements.lock)"
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
    echo "$want" > "$stamp"
fi
echo "setup: ready (activate with: source .venv/bin/activate)"
