"""A private Postfix and a private Dovecot for the bounce tests, on 127.0.0.1 only.

Postfix: its own config_directory, queue_directory and data_directory in a temp folder
(`postfix -c DIR start`), SMTP on a free loopback port, virtual mailbox domains delivered to one Maildir
per address. `readers.test` holds the subscribers' mailboxes and `bounce.test` the bounce mailbox; an
address of readers.test without a mailbox is accepted (smtpd_reject_unlisted_recipient = no) and then
bounced by the virtual agent, so the DSN (Status 5.1.1) arrives asynchronously in the envelope
sender's Maildir, as from a real relay.

Dovecot: IMAP on a free loopback port, its own config and base_dir in a temp folder, one passwd-file
user whose mail is a Maildir.

Both need Debian's postfix, dovecot-core and dovecot-imapd (`.ci/run` installs them) and root (the
daemons drop privileges themselves). Missing, the tests skip, or fail when CI=true.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
START_TIMEOUT = 60.0  # seconds: a bound, not a pace; the loops below return as soon as the server is up


def require(condition: object, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if s.recv(100):
                return
        time.sleep(0.1)
    text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s:\n{text}")


def wait_for_tcp(port: int, what: str, log: Path) -> None:
    """Wait until something accepts connections on `port` (a TLS port says nothing first)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            return
        time.sleep(0.1)
    text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s:\n{text}")


def _nobody() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


class PostfixServer:
    """One private Postfix instance; `mailboxes` are the readers.test and bounce.test addresses with a
    Maildir (`maildir(address)`); any other readers.test address bounces."""

    DOMAINS = ("readers.test", "bounce.test")

    def __init__(self, mailboxes: tuple[str, ...]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="digest-postfix-"))
        self.folder.chmod(0o755)
        self.conf = self.folder / "conf"
        self.queue = self.folder / "queue"
        self.data = self.folder / "data"
        self.mail = self.folder / "mail"
        self.log = self.folder / "log" / "postfix.log"
        self.port = free_port()
        self.mailboxes = mailboxes

    def maildir(self, address: str) -> Path:
        local, _, domain = address.partition("@")
        return self.mail / domain / local

    def _master_cf(self) -> str:
        lines = [f"127.0.0.1:{self.port} inet n - n - - smtpd"]
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            fields = line.split()
            if not fields or line.startswith(("#", " ", "\t")) or len(fields) < 8:
                continue
            if fields[1] == "inet" or fields[0] in ("maildrop", "uucp", "ifmail", "bsmtp", "mailman"):
                continue
            if fields[0].startswith("scalemail"):
                continue
            fields[4] = "n"  # no chroot: the instance lives in a temp folder
            lines.append(" ".join(fields))
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        uid, gid = _nobody()
        for folder in (self.conf, self.queue, self.data, self.mail, self.log.parent):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.mail, uid, gid)
        shutil.chown(self.data, "postfix", "postfix")
        (self.conf / "mailboxes").write_text(
            "".join(f"{a} {a.partition('@')[2]}/{a.partition('@')[0]}/\n" for a in self.mailboxes)
        )
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.mail.test",
            "mydomain": "mail.test",
            "myorigin": "mx.mail.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.log.parent),
            "virtual_mailbox_domains": ", ".join(self.DOMAINS),
            "virtual_mailbox_base": str(self.mail),
            "virtual_mailbox_maps": f"texthash:{self.conf / 'mailboxes'}",
            "virtual_uid_maps": f"static:{uid}",
            "virtual_gid_maps": f"static:{gid}",
            "virtual_minimum_uid": "100",
            "smtpd_reject_unlisted_recipient": "no",
            "recipient_delimiter": "+",  # bounces+<verp id>@bounce.test is delivered to bounces@
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtputf8_enable": "no",
            "smtp_dns_support_level": "disabled",
            "notify_classes": "",
            "delay_warning_time": "0",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.conf / "master.cf").write_text(self._master_cf())
        errors = self.folder / "start.err"
        with errors.open("wb") as err:  # the daemons keep their inherited stdio: no pipes to wait on
            run = subprocess.run(
                ["postfix", "-c", str(self.conf), "start"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=120,
                check=False,
            )
        if run.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"postfix -c {self.conf} start failed: {errors.read_text(errors='replace')}{log}"
            )
        wait_for_port(self.port, "postfix", self.log)

    def stop(self) -> None:
        subprocess.run(
            ["postfix", "-c", str(self.conf), "stop"], capture_output=True, timeout=120, check=False
        )
        pid_file = self.queue / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


class DovecotServer:
    """A private Dovecot with one IMAP user (`user`, `password`)."""

    user = "bounces"
    password = "imap-test-password"  # a throwaway test server

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.tls = tls  # (certificate, key): IMAP offers STARTTLS and IMAPS listens on tls_port
        self.conf = self.folder / "dovecot.conf"
        self.log = self.folder / "dovecot.log"
        self.base = self.folder / "run"

    def start(self) -> None:
        uid, gid = _nobody()
        home = self.folder / "home"
        home.mkdir()
        shutil.chown(home, uid, gid)
        (self.folder / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}::::\n")
        self.conf.write_text(
            f"""
base_dir = {self.base}
state_dir = {self.folder}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
{self._ssl()}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{home}/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.folder}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
"""
        )
        errors = self.folder / "start.err"
        with errors.open("wb") as err:  # the daemon keeps its inherited stdio: no pipes to wait on
            run = subprocess.run(
                ["dovecot", "-c", str(self.conf)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=60,
                check=False,
            )
        if run.returncode != 0:
            raise RuntimeError(f"dovecot -c {self.conf} failed: {errors.read_text(errors='replace')}")
        wait_for_port(self.port, "dovecot", self.log)
        if self.tls_port:
            wait_for_tcp(self.tls_port, "dovecot imaps", self.log)

    def _ssl(self) -> str:
        if self.tls is None:
            return "ssl = no"
        cert, key = self.tls
        return f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.base / "master.pid").read_text().split()[0]), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (self.base / "master.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)


def _have(*commands: str) -> bool:
    return all(shutil.which(c) or Path("/usr/sbin", c).exists() for c in commands)


@pytest.fixture(scope="module")
def postfix_server() -> Iterator[PostfixServer]:
    require(_have("postfix"), "postfix is not installed (apt-get install -y postfix; see .ci/run)")
    require(os.geteuid() == 0, "a private Postfix instance needs root")
    server = PostfixServer(("ann@readers.test", "bob@readers.test", "bounces@bounce.test"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[DovecotServer]:
    require(_have("dovecot"), "dovecot is not installed (apt-get install -y dovecot-core dovecot-imapd)")
    require(os.geteuid() == 0, "a private Dovecot needs root")
    from send_support import make_certificate

    folder = Path(tempfile.mkdtemp(prefix="digest-dovecot-tls-"))
    folder.chmod(0o755)
    cert, key = make_certificate(folder)
    server = DovecotServer(tls=(cert, key))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
