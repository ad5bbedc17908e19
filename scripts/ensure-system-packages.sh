#!/usr/bin/env bash
# Debian packages some tests use: docker-compose (checks compose.yaml with `docker-compose
# config`; no Docker engine is needed) and openssl (makes the certificates of the TLS test).
# Installs what is missing when it can (root with apt-get); otherwise says what to install.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && { echo "system packages: present (docker-compose, openssl)"; exit 0; }

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system packages: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "system packages: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
