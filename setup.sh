#!/usr/bin/env bash
# Install what Cutover needs on a Debian 12 machine, as root: Debian packages (only those
# missing) and a virtualenv with pinned Python packages. Idempotent and quick when done.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (the lab starts dockerd and lxcfs)" >&2; exit 2
fi

# Runtimes and tools, all from Debian's packages.
PACKAGES="docker.io containerd runc crun podman conmon catatonit lxc lxcfs busybox-static debootstrap docker-registry btrfs-progs e2fsprogs iproute2 util-linux mount procps openssh-server openssh-client chromium"
# ./setup.sh --kernel-gate: also qemu, which only ./kernel-gate.sh needs.
[ "${1:-}" = "--kernel-gate" ] && PACKAGES="$PACKAGES qemu-system-x86"
# The HTML report needs npm (to fetch allure-commandline) and Java 17 (to run it). Debian's
# packages only when the commands are missing: a machine may have its own node or Java
# outside dpkg, which must not be installed over.
command -v npm >/dev/null || PACKAGES="$PACKAGES npm"
command -v java >/dev/null || PACKAGES="$PACKAGES openjdk-17-jre-headless"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing" >&2
  # Packages must not start their own daemons (no systemd here, and the lab runs its own):
  # a policy-rc.d that denies starts, only for the duration of the install.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1
  fi
  trap '[ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing >/dev/null
  echo "setup: packages installed" >&2
fi

# The virtualenv, rebuilt only when requirements.txt changes.
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with pinned packages (requirements.txt)" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > $stamp
fi
# The offline HTML report: Allure 2 from the npm registry (runs on Debian's Java 17).
if [ ! -x tools/node_modules/.bin/allure ]; then
  if command -v npm >/dev/null && command -v java >/dev/null; then
    echo "setup: installing allure-commandline 2.46.1 into tools/" >&2
    mkdir -p tools
    (cd tools && npm install --silent --no-audit --no-fund allure-commandline@2.46.1 >/dev/null) \
      || echo "setup: allure-commandline not installed: HTML reports will be skipped" >&2
  else
    echo "setup: npm or java missing: HTML reports will be skipped (results, JUnit and allure-results still written)" >&2
  fi
fi
echo "setup: ready" >&2
