"""A private Postfix instance for tests: Debian's `postfix` package with its own
configuration, queue and data directories under a temporary directory, listening on a free
loopback port, started and stopped by the test (never the system's service).

    with PrivatePostfix(transports={"example.com": ("127.0.0.1", 2526)}) as relay:
        ... send through 127.0.0.1:relay.port ...

It relays what loopback clients send to the transports' next hops, never looks up DNS,
and bounces a message at its first failure, permanent or not (maximal_queue_lifetime = 0),
so a 452 comes back as a DSN at once, as it would after days of retries.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import free_port
from tests.installed import require
from tests.ports import alive

POSTFIX = "/usr/sbin/postfix"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.postfix-test.example.com
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
transport_maps = texthash:{root}/config/transport
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
smtputf8_enable = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
notify_classes =
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
default_process_limit = 20
"""

# The services Postfix needs to relay and to bounce, none chrooted.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n  -  n  60   1  pickup
cleanup    unix  n  -  n  -    0  cleanup
qmgr       unix  n  -  n  300  1  qmgr
rewrite    unix  -  -  n  -    -  trivial-rewrite
bounce     unix  -  -  n  -    0  bounce
defer      unix  -  -  n  -    0  bounce
trace      unix  -  -  n  -    0  bounce
verify     unix  -  -  n  -    1  verify
flush      unix  n  -  n  1000 0  flush
proxymap   unix  -  -  n  -    -  proxymap
proxywrite unix  -  -  n  -    1  proxymap
smtp       unix  -  -  n  -    -  smtp
relay      unix  -  -  n  -    -  smtp
showq      unix  n  -  n  -    -  showq
error      unix  -  -  n  -    -  error
retry      unix  -  -  n  -    -  error
discard    unix  -  -  n  -    -  discard
anvil      unix  -  -  n  -    1  anvil
scache     unix  -  -  n  -    1  scache
postlog    unix-dgram n - n - 1 postlogd
"""


def require_postfix() -> None:
    """Debian's postfix package (CI installs it: there a missing one fails the test)."""
    require(POSTFIX, "apt-get install postfix (the service stays off)")


class PrivatePostfix:
    def __init__(self, transports: dict[str, tuple[str, int]]) -> None:
        self.port = free_port()
        # the postfix user must reach the directories: not under pytest's 0700 tmp_path
        self.root = Path(tempfile.mkdtemp(prefix="herald-postfix-"))
        self.root.chmod(0o755)
        self.config = self.root / "config"
        for name in ("config", "queue", "data"):
            (self.root / name).mkdir()
        (self.config / "main.cf").write_text(MAIN_CF.format(root=self.root))
        (self.config / "master.cf").write_text(MASTER_CF.format(port=self.port))
        routes = [f"{domain} smtp:[{host}]:{port}" for domain, (host, port) in transports.items()]
        (self.config / "transport").write_text("\n".join(routes) + "\n")
        shutil.chown(self.root / "data", user="postfix")

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # postfix reports its errors on stderr only to a terminal: `script` gives it one
        command = " ".join([POSTFIX, "-c", str(self.config), *args])
        return subprocess.run(
            ["script", "-qec", command, "/dev/null"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LANG": "C"},
        )

    def start(self) -> PrivatePostfix:
        for step in ("check", "start"):
            done = self._postfix(step)
            if done.returncode != 0:
                self.log_tail()
                raise RuntimeError(f"postfix {step} failed: {done.stdout}{done.stderr}")
        deadline = time.monotonic() + 30
        while not self._listening():
            if time.monotonic() > deadline:
                raise RuntimeError("postfix did not listen:\n" + self.log_tail())
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def master_pid(self) -> int | None:
        try:
            return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        self._postfix("stop")
        deadline = time.monotonic() + 20
        while pid is not None and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and alive(pid):  # by its PID, never by name
            os.kill(pid, 9)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.root / "maillog").read_text().splitlines()[-lines:])
        except OSError:
            return "(no maillog)"

    def __enter__(self) -> PrivatePostfix:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
