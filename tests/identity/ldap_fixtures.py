"""A real LDAP directory for the tests: Debian's slapd with its own temporary slapd.conf and
database, on a free loopback port (as root it runs fine without dropping privileges)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import free_port, stop_process

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=ru"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "directory-admin-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

CONFIG = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {dir}/data
"""


@dataclass
class Directory:
    uri: str

    def connection(self):
        import ldap

        conn = ldap.initialize(self.uri)
        conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        return conn

    def add_user(self, uid: str, password: str) -> str:
        dn = f"uid={uid},{PEOPLE}"
        self.connection().add_s(dn, [
            ("objectClass", [b"inetOrgPerson"]), ("uid", [uid.encode()]), ("cn", [uid.encode()]),
            ("sn", [uid.encode()]), ("userPassword", [password.encode()]),
        ])
        return dn

    def add_group(self, cn: str, members: list[str]) -> str:
        dn = f"cn={cn},{GROUPS}"
        self.connection().add_s(dn, [
            ("objectClass", [b"groupOfNames"]), ("cn", [cn.encode()]),
            # groupOfNames needs a member: the admin stays in every group, so others can leave
            ("member", [m.encode() for m in [*members, ADMIN_DN]]),
        ])
        return dn

    def remove_member(self, group_dn: str, member_dn: str) -> None:
        import ldap

        self.connection().modify_s(group_dn, [(ldap.MOD_DELETE, "member", [member_dn.encode()])])

    def set_password(self, user_dn: str, password: str) -> None:
        import ldap

        self.connection().modify_s(user_dn, [(ldap.MOD_REPLACE, "userPassword", [password.encode()])])


@pytest.fixture(scope="session")
def slapd(tmp_path_factory) -> Iterator[Directory]:
    if not Path(SLAPD).exists() or shutil.which("ldapadd") is None:
        pytest.skip("slapd is not installed (scripts/install_system_deps.sh)")
    import ldap

    base = tmp_path_factory.mktemp("slapd")
    (base / "data").mkdir()
    (base / "slapd.conf").write_text(CONFIG.format(dir=base, suffix=SUFFIX, admin=ADMIN_DN, password=ADMIN_PASSWORD))
    uri = f"ldap://127.0.0.1:{free_port()}"
    log = (base / "slapd.log").open("w")
    process = subprocess.Popen([SLAPD, "-f", str(base / "slapd.conf"), "-h", f"{uri}/", "-d", "0"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = ldap.initialize(uri)
                conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
                break
            except ldap.SERVER_DOWN:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"slapd did not start: {(base / 'slapd.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        conn.add_s(SUFFIX, [("objectClass", [b"dcObject", b"organization"]), ("dc", [b"example"]),
                            ("o", [b"Example"])])
        for ou in ("people", "groups"):
            conn.add_s(f"ou={ou},{SUFFIX}", [("objectClass", [b"organizationalUnit"]), ("ou", [ou.encode()])])
        yield Directory(uri=uri)
    finally:
        stop_process(process)
        log.close()
