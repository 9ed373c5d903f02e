#!/usr/bin/env bash
# The Prometheus server the end-to-end metrics test scrapes PushHub with
# (tests/e2e/test_prometheus.py): Debian's package `prometheus`. Does nothing
# when it is installed; else installs it with apt-get when running as root
# (CI), updating the package lists only when the install cannot find it.
set -euo pipefail

command -v prometheus >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "prometheus is not installed: run 'apt-get install -y prometheus' as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Its service is never started here: the test runs its own server, on its own port.
install() { apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
install || { apt-get update -q >/dev/null && install; }
command -v prometheus >/dev/null
