#!/usr/bin/env bash
# Debian packages the service and its tests use, installed only when missing:
# PostgreSQL + Redis (the test suite starts its own servers from these binaries), nginx (TLS
# terminator for the partner API's mTLS), Chromium + driver (browser tests), wrk (`make bench`),
# OpenLDAP's headers
# (python-ldap has no wheel: pip builds it), slapd + ldap-utils (the directory tests' server),
# prometheus (only its promtool is used: it checks and unit-tests the alerting rules in ops/prometheus/) and
# gettext (msgfmt compiles the translations at install; msgattrib checks them in the tests).
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v chromium >/dev/null || missing+=(chromium chromium-driver)
[ -f /usr/include/ldap.h ] || missing+=(libldap2-dev)
[ -f /usr/include/sasl/sasl.h ] || missing+=(libsasl2-dev)
command -v gcc >/dev/null || missing+=(gcc)
[ -f /usr/include/python3.11/Python.h ] || missing+=(python3-dev)
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapadd >/dev/null || missing+=(ldap-utils)
command -v wrk >/dev/null || missing+=(wrk)
command -v promtool >/dev/null || missing+=(prometheus)
command -v msgfmt >/dev/null || missing+=(gettext)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
