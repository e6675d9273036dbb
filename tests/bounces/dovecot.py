"""A private Dovecot IMAP server for the tests: its own config file, loopback, free ports,
TLS with a certificate the test CA signs, a temporary maildir and a passwd-file of users.
Started as `dovecot -F -c FILE` and stopped by its PID; never the system's service."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bounces.certs import Issued, server_cert
from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    root: Path
    imap_port: int
    imaps_port: int
    process: subprocess.Popen[bytes]
    users: dict[str, str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start(ca: Issued, users: dict[str, str]) -> Dovecot:
    """A running server, in a directory of its own that Dovecot's users can enter (pytest's
    temporary directories are private to the user running the tests)."""
    root = Path(tempfile.mkdtemp(prefix="herald-dovecot-"))
    server_cert(ca).write(root, "server")
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(exist_ok=True)
    (root / "users").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items()))
    if os.getuid() == 0:  # as root: Debian's dovecot users for the services, nobody for mail
        internal, login = "dovecot", "dovenull"
        mail = pwd.getpwnam("nobody")
    else:  # as anyone else, everything runs as that user
        internal = login = pwd.getpwuid(os.getuid()).pw_name
        mail = pwd.getpwuid(os.getuid())
    for sub in ("mail", "home"):
        os.chown(root / sub, mail.pw_uid, mail.pw_gid)
    root.chmod(0o755)
    imap_port, imaps_port = free_port(), free_port()
    config = root / "dovecot.conf"
    config.write_text(
        _CONFIG.format(
            root=root,
            internal_user=internal,
            internal_group=_group(internal),
            login_user=login,
            mail_uid=mail.pw_uid,
            mail_gid=mail.pw_gid,
            imap_port=imap_port,
            imaps_port=imaps_port,
        )
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    server = Dovecot(root, imap_port, imaps_port, process, users)
    deadline = time.monotonic() + 20
    while not (_listening(imap_port) and _listening(imaps_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"dovecot did not start: {stderr}\n{log}")
        time.sleep(0.05)
    return server


def _group(user: str) -> str:
    import grp

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
