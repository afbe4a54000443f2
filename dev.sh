#!/usr/bin/env bash
# Set up a development environment on Debian 12 (or Raspberry Pi OS Bookworm) and
#   ./dev.sh run    run the service on sample photos: teach three classes, replay held-out
#                   photos as the camera, print what it publishes over MQTT (Ctrl-C stops)
#   ./dev.sh test   run the whole test suite
# Everything it needs is installed on first use: Debian packages (python3-venv,
# mosquitto, debootstrap, systemd-container) with apt-get, Python packages into .venv.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
SHARED=${EDGEKNN_SHARED:-$ROOT/../shared}

need_apt=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# the web page's browser test drives Debian's chromium headless through its chromedriver
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# The service under a real systemd (tests/test_nspawn_service.py): a debootstrapped
# Debian 12 booted with systemd-nspawn, deployed over ssh.
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
command -v ssh >/dev/null || need_apt+=(openssh-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# mosquitto's Debian package starts a system broker on port 1883; the tests start
# their own on free ports and never use it.

if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.installed
fi
export EDGEKNN_MODEL_MIRROR=${EDGEKNN_MODEL_MIRROR:-$SHARED/models}

case "${1:-}" in
  test)
    shift
    .venv/bin/ruff check edgeknn tests
    .venv/bin/mypy edgeknn
    OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} .venv/bin/python -m pytest -q "$@"
    ;;
  run|demo)
    shift
    export EDGEKNN_MODELS_DIR=${EDGEKNN_MODELS_DIR:-$ROOT/var/models}
    exec .venv/bin/python -m edgeknn.tools.demo "$SHARED" "$@"
    ;;
  *)
    echo "usage: ./dev.sh test [pytest args] | ./dev.sh run [--seconds N]" >&2
    exit 2
    ;;
esac
