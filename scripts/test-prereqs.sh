#!/usr/bin/env bash
# `npm test` runs this first (pretest): the tests talk to real dcmtk tools, the pydicom
# sample files, socat/stunnel, Chromium (browser tests of the console, driven by
# playwright-core), a real S3 server (moto_server) and buildah (the container image is
# built and run by test/deploy/container.test.ts). On a Debian machine as
# root it installs the missing Debian packages; otherwise it fails at once naming them.
set -euo pipefail
pkgs=(dcmtk python3-pydicom socat stunnel4 openssl curl chromium unzip buildah strace)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages the tests need: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "the tests need these Debian packages: ${missing[*]} (as root: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi
for t in echoscu storescu findscu getscu movescu storescp dcmdump socat openssl curl; do
  command -v "$t" >/dev/null || { echo "required tool missing: $t (apt-get install -y dcmtk socat openssl curl)" >&2; exit 1; }
done
command -v buildah >/dev/null || { echo "buildah missing (test/deploy/container.test.ts builds the image): apt-get install -y buildah" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace missing (test/db/embedded-durability.test.ts watches the embedded database fsync): apt-get install -y strace" >&2; exit 1; }
test -x /usr/bin/chromium || { echo "Chromium missing at /usr/bin/chromium (browser tests): apt-get install -y chromium" >&2; exit 1; }
test -d /usr/lib/python3/dist-packages/pydicom/data/test_files || { echo "pydicom sample files missing (apt-get install -y python3-pydicom)" >&2; exit 1; }
command -v moto_server >/dev/null || python3 -c 'import moto.server' 2>/dev/null || test -x "$HOME/.pyenv/shims/moto_server" || {
  echo "moto_server missing (S3 fault tests): pip install 'moto[server]==5.2.1'" >&2; exit 1; }

# PostgreSQL stopped and started under a running Tresor (test/storage/pg-faults.test.ts,
# test/unit/database-outage.test.ts) needs a private cluster: the server binaries, and as
# root the postgres OS user and runuser (PostgreSQL refuses to run as root).
pg_bin="${TRESOR_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)}"
{ [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ]; } || {
  echo "PostgreSQL server binaries (initdb, pg_ctl) missing (database fault tests): apt-get install -y postgresql, or set TRESOR_PG_BIN" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
  id -u postgres >/dev/null 2>&1 || { echo "the postgres OS user is missing (database fault tests): apt-get install -y postgresql" >&2; exit 1; }
  command -v runuser >/dev/null || { echo "runuser missing (database fault tests): apt-get install -y util-linux" >&2; exit 1; }
fi
