"""The SMTP transport: a pool of reused connections, a rate limit, retries with backoff, replies classified.

`pool_size` worker threads each keep one connection open (plain, STARTTLS or implicit TLS, with login
when a username is set) and take jobs from a queue. A shared limiter spaces messages to
`rate_per_second`. A 4xx reply or a dropped connection is retried up to `retries` times, waiting
`retry_delay` seconds and twice as long each further time; a 5xx reply is a permanent failure of that
recipient (a hard bounce when the address itself is refused). When the server cannot be reached, the
login is refused or the sender address is refused (5xx to MAIL FROM: every message would fail the same
way) the transport stops: what was settled is yielded, then DeliveryError is raised.

The reply to the end of a message is awaited for `data_timeout` (RFC 5321 4.5.3.2.6: a content filter
may take minutes), not `timeout`. A message whose reply never came may have been delivered: it is
settled as `in_doubt` and never retried by this transport. Each worker hands over at most one message
whose Delivery the caller has not yet taken back (the caller records it before asking for the next), so
at most `pool_size` messages are ever handed over without their ledger row. The caller's `handing_over`
is called by the worker once the server has accepted the recipient and before DATA (the caller writes
the recipient's `in_doubt` row there): when it raises, that message is not sent and every worker stops
before its next hand-over. Logins are made one at a time and with one mechanism; the first refusal
stops every worker without another attempt.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from digest.config import SmtpSettings
from digest.deliver.transport import Delivery, HandingOver, Job, describe_reply, is_hard_bounce
from digest.errors import DeliveryError

log = logging.getLogger(__name__)
_MAX_DELAY = 60.0
_POLL = 0.05  # how often the sending thread looks at the caller's stop flag while it waits
_LEADING_DOT = re.compile(rb"(?m)^\.")
_AUTH_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")  # smtplib's order of preference


class RateLimiter:
    """Spaces events evenly at `per_second`, shared by every thread of a pool."""

    def __init__(self, per_second: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._monotonic = monotonic
        self._next = monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        """Block until this caller's slot (or until `stop` is set)."""
        with self._lock:
            now = self._monotonic()
            slot = max(self._next, now)
            self._next = slot + self._interval
        if slot > now:
            stop.wait(slot - now)


class _ConnectionProblemError(Exception):
    """The connection could not be made or was lost: worth retrying, then the server is unreachable."""


class _NoReplyError(Exception):
    """The whole message was sent but the reply to its end never came: it may have been delivered."""


class _StoppedError(Exception):
    """The transport was stopped between RCPT and DATA: the message was not handed over."""


class _NotHandedOverError(Exception):
    """The caller's `handing_over` raised (its exception is the cause): the message was not handed over."""


@dataclass(frozen=True, slots=True)
class _Failed:
    """One failed attempt: what the server said and what follows from it."""

    detail: str
    permanent: bool = False
    bounced: bool = False
    drop: bool = False  # the connection is no longer usable
    connection: bool = False  # the server could not be reached or hung up


def _failure(error: Exception, rcpt: str) -> _Failed:
    """Classify an exception from one sending attempt."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, message = error.recipients.get(rcpt, (0, b"refused"))
        detail = describe_reply(code, message)
        if code >= 500:
            return _Failed(detail, permanent=True, bounced=is_hard_bounce(code, message))
        return _Failed(detail, drop=code == 421)
    if isinstance(error, smtplib.SMTPResponseException):
        detail = describe_reply(error.smtp_code, error.smtp_error)
        return _Failed(detail, permanent=error.smtp_code >= 500, drop=error.smtp_code == 421)
    if isinstance(error, _ConnectionProblemError):
        return _Failed(str(error), connection=True)
    # SMTPServerDisconnected, a reset, a timeout
    return _Failed(f"connection lost: {error or type(error).__name__}", drop=True, connection=True)


@dataclass(frozen=True, slots=True)
class _Abandoned:
    """A job the worker did not settle: stopped before it started, or a fatal error."""

    job: Job
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Settled:
    """A settled job; its worker starts no other message until `taken` is set (the caller recorded it)."""

    delivery: Delivery
    taken: threading.Event


class SmtpTransport:
    """Sends through one SMTP server with `pool_size` reused connections."""

    name = "smtp"

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        envelope_from: str,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self._password = password
        if ssl_context is None and settings.security != "none":
            ssl_context = ssl.create_default_context(
                cafile=str(settings.ca_file) if settings.ca_file else None
            )
        self._context = ssl_context
        self._limiter = RateLimiter(settings.rate_per_second)
        self.connections_opened = 0
        self._count_lock = threading.Lock()
        self._login_lock = threading.Lock()  # one login at a time: a refusal is seen before the next try
        self._login_refused: DeliveryError | None = None

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def connect(self) -> smtplib.SMTP:
        """Open, secure and log in one connection.

        Raises:
            DeliveryError: TLS or login was refused (retrying cannot help).
            _ConnectionProblemError: the server could not be reached or hung up.
        """
        s = self.settings
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                self._starttls(conn)
            if s.username:
                self._login(conn, s.username)
        except smtplib.SMTPNotSupportedError as e:
            _close(conn)
            raise DeliveryError(
                f"smtp {self.where} does not offer AUTH: {e}",
                hint="servers usually offer login only over TLS: check [smtp] security",
            ) from e
        except ssl.SSLCertVerificationError as e:
            _close(conn)
            raise DeliveryError(
                f"smtp {self.where}: the server's TLS certificate is not trusted: {e.verify_message}",
                hint="check that [smtp] host matches the certificate, or set [smtp] ca_file to its CA",
            ) from e
        except ssl.SSLError as e:
            _close(conn)
            raise DeliveryError(
                f"smtp {self.where}: TLS failed: {e}",
                hint='check [smtp] security ("tls" for port 465, "starttls" for 587) and port',
            ) from e
        except smtplib.SMTPResponseException as e:
            _close(conn)
            raise _ConnectionProblemError(describe_reply(e.smtp_code, e.smtp_error)) from e
        except DeliveryError:
            _close(conn)
            raise
        except OSError as e:
            _close(conn)
            raise _ConnectionProblemError(f"cannot connect: {e}") from e
        with self._count_lock:
            self.connections_opened += 1
        return conn

    def _login(self, conn: smtplib.SMTP, username: str) -> None:
        """Log in with one mechanism (the first the server offers of CRAM-MD5, PLAIN, LOGIN), one at a time.

        Unlike smtplib's `login`, a refusal is not followed by a try of the next mechanism, and once a
        login was refused no connection of this transport tries again.

        Raises:
            DeliveryError: the login was refused (now or by an earlier connection), or the server
                offers no usable mechanism.
            smtplib.SMTPNotSupportedError: the server does not offer AUTH.
        """
        with self._login_lock:
            if self._login_refused is not None:
                raise DeliveryError(self._login_refused.message, hint=self._login_refused.hint)
            conn.ehlo_or_helo_if_needed()
            if not conn.has_extn("auth"):
                raise smtplib.SMTPNotSupportedError("the server does not offer AUTH")
            offered = conn.esmtp_features["auth"].upper().split()
            mechanism = next((m for m in _AUTH_MECHANISMS if m in offered), None)
            if mechanism is None:
                raise DeliveryError(
                    f"smtp {self.where} offers no login mechanism digest can use"
                    f" ({' '.join(offered) or 'none'}; digest uses CRAM-MD5, PLAIN or LOGIN)",
                    hint="ask the server's operator to offer AUTH PLAIN or LOGIN over TLS",
                )
            conn.user, conn.password = username, self._password or ""
            authobject = getattr(conn, "auth_" + mechanism.lower().replace("-", "_"))
            try:
                conn.auth(mechanism, authobject, initial_response_ok=True)
            except smtplib.SMTPAuthenticationError as e:
                reply = describe_reply(e.smtp_code, e.smtp_error)
                self._login_refused = DeliveryError(
                    f"smtp {self.where} refused the login of {username!r}: {reply}",
                    hint="check [smtp] username and the password in the variable named by"
                    " [smtp] password_env; digest stopped after this one refusal (no other login was tried)",
                )
                raise self._login_refused from e

    def _transmit(
        self,
        conn: smtplib.SMTP,
        rcpt: str,
        message: bytes,
        sender: str,
        *,
        handing_over: Callable[[], None] | None = None,
    ) -> None:
        """MAIL, RCPT and DATA for one message; the reply to its end is awaited for `data_timeout`.

        `handing_over()` is called once the recipient is accepted, before DATA; when it raises, the
        transaction is reset and nothing is sent.

        Raises:
            smtplib.SMTPSenderRefused, SMTPRecipientsRefused, SMTPDataError: a refusal (as `sendmail`).
            OSError: the connection failed before the whole message was sent (nothing was delivered).
            _NoReplyError: the message was sent but its reply never came (it may have been delivered).
            _StoppedError, _NotHandedOverError: `handing_over` raised (nothing was sent).
        """
        conn.ehlo_or_helo_if_needed()
        options = [f"SIZE={len(message)}"] if conn.does_esmtp and conn.has_extn("size") else []
        code, reply = conn.mail(sender, options)
        if code != 250:
            _reset(conn, code)
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = conn.rcpt(rcpt)
        if code not in (250, 251):
            _reset(conn, code)
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
        if handing_over is not None:
            try:
                handing_over()
            except (_StoppedError, _NotHandedOverError):
                _quiet_reset(conn)
                raise
        conn.putcmd("data")
        code, reply = conn.getreply()
        if code != 354:
            _reset(conn, code)
            raise smtplib.SMTPDataError(code, reply)
        payload = _LEADING_DOT.sub(b"..", message)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        conn.send(payload + b".\r\n")
        # From here the server may have the message: a missing reply is "in doubt", never "failed".
        sock = conn.sock
        if sock is not None:
            sock.settimeout(self.settings.data_timeout)
        try:
            code, reply = conn.getreply()
        except OSError as e:  # smtplib turns a timeout or a hang-up into SMTPServerDisconnected
            reason = str(e) or type(e).__name__
            raise _NoReplyError(
                f"no reply to the end of the message within [smtp] data_timeout"
                f" ({self.settings.data_timeout:g} s): {reason}"
            ) from e
        if conn.sock is not None:
            conn.sock.settimeout(self.settings.timeout)
        if code != 250:
            if code == 421:
                conn.close()
            raise smtplib.SMTPDataError(code, reply)

    def _starttls(self, conn: smtplib.SMTP) -> None:
        if not conn.has_extn("starttls"):
            raise DeliveryError(
                f"smtp {self.where} does not offer STARTTLS",
                hint='set [smtp] security = "tls" for implicit TLS, or "none" on a trusted network only',
            )
        conn.starttls(context=self._context)
        conn.ehlo()

    def _deliver(  # noqa: PLR0912 - one retry loop: each outcome of an attempt is a branch
        self,
        conn: smtplib.SMTP | None,
        job: Job,
        stop: threading.Event,
        handing_over: HandingOver | None = None,
    ) -> tuple[Delivery | None, smtplib.SMTP | None]:
        """Send one job with retries; returns the settled Delivery (None if stopped) and the connection.

        Raises:
            DeliveryError: the server cannot be reached, or refused the sender address.
            Whatever `handing_over` raised (the message was not handed over).
        """
        rcpt = job.recipient.email
        retries = self.settings.retries
        attempt = 0
        not_handed: list[BaseException] = []  # what the caller's `handing_over` raised

        def hand_over() -> None:
            if stop.is_set():  # another worker failed (or the caller stopped): no new hand-over
                raise _StoppedError
            if handing_over is not None:
                try:
                    handing_over(job)
                except BaseException as e:
                    not_handed.append(e)
                    raise _NotHandedOverError from e

        while True:
            try:
                if conn is None or conn.sock is None:  # none yet, or smtplib hung up itself (a 421)
                    conn = self.connect()
                self._limiter.wait(stop)
                if stop.is_set():
                    return None, conn
                self._transmit(
                    conn, rcpt, job.message, job.envelope_from or self.envelope_from, handing_over=hand_over
                )
                return Delivery(job=job, accepted=True, detail="250 accepted"), conn
            except (_StoppedError, _NotHandedOverError):
                if not_handed:
                    break
                return None, conn
            except _NoReplyError as e:
                _close(conn)
                log.warning("%s: %s; in doubt, not retried in this run", rcpt, e)
                return Delivery(job, False, str(e), in_doubt=True), None
            except smtplib.SMTPSenderRefused as e:
                if e.smtp_code >= 500:
                    _close(conn)
                    raise self._sender_refused(e) from e
                failed = _failure(e, rcpt)
            except (_ConnectionProblemError, OSError) as e:  # smtplib's exceptions are OSErrors
                failed = _failure(e, rcpt)
            if failed.drop:
                _close(conn)
                conn = None
            if failed.permanent:
                return Delivery(job, False, failed.detail, permanent=True, bounced=failed.bounced), conn
            if attempt >= retries:
                if failed.connection:
                    raise DeliveryError(
                        f"smtp {self.where} cannot be reached: {failed.detail}"
                        f" (tried {retries + 1} time{'s' if retries else ''})",
                        hint="check [smtp] host, port and security, and that the server is up;"
                        " then run digest send again: it resumes where it stopped",
                    )
                return Delivery(job, False, f"{failed.detail} (still refused after {retries} retries)"), conn
            delay = min(self.settings.retry_delay * 2**attempt, _MAX_DELAY)
            log.info("retrying %s in %.2f s after: %s", rcpt, delay, failed.detail)
            if stop.wait(delay):
                return None, conn
            attempt += 1
        raise not_handed[0]  # outside the handler: the caller's exception goes on as it was raised

    def _sender_refused(self, e: smtplib.SMTPSenderRefused) -> DeliveryError:
        reply = describe_reply(e.smtp_code, e.smtp_error)
        return DeliveryError(
            f"smtp {self.where} refused the sender address {self.envelope_from!r}: {reply}",
            hint="check [delivery] from_address is allowed to send through this server"
            " (and [smtp] username); then run digest send again: nobody was marked failed",
        )

    def _worker(
        self,
        work: queue.Queue[Job | None],
        results: queue.Queue[_Settled | _Abandoned],
        stop: threading.Event,
        handing_over: HandingOver | None = None,
    ) -> None:
        conn: smtplib.SMTP | None = None
        try:
            while True:
                job = work.get()
                if job is None:
                    return
                if stop.is_set():
                    results.put(_Abandoned(job))
                    continue
                try:
                    delivery, conn = self._deliver(conn, job, stop, handing_over)
                except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises it
                    _close(conn)
                    conn = None
                    stop.set()
                    results.put(_Abandoned(job, e))
                    continue
                if delivery is None:
                    results.put(_Abandoned(job))
                    continue
                # No other message until the caller has taken (and recorded) this one, or stops.
                taken = threading.Event()
                results.put(_Settled(delivery, taken))
                while not taken.wait(_POLL) and not stop.is_set():
                    pass
        finally:
            if conn is not None:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    _close(conn)

    def send(  # noqa: PLR0912 - one loop: feed, drain, stop
        self,
        jobs: Iterable[Job],
        *,
        should_stop: Callable[[], bool] | None = None,
        handing_over: HandingOver | None = None,
    ) -> Iterator[Delivery]:
        """Send every job through the pool, yielding each Delivery as it is settled.

        `handing_over(job)` is called by the worker thread once the server accepted the recipient,
        before DATA (before each attempt); when it raises, that message is not sent, every worker
        stops before its next hand-over, and the exception is raised once what was settled is yielded.

        On Ctrl-C the jobs in flight are finished and yielded before KeyboardInterrupt goes on, so
        nothing accepted is left unrecorded. Once `should_stop()` is true (looked at every few
        hundredths of a second) no job is started and no retry is made: a worker waiting to retry or
        to reconnect wakes at once and gives its job back unsettled, so the send ends promptly.

        Raises:
            DeliveryError: the server cannot be reached or refused TLS/login.
            Whatever `handing_over` raised.
        """
        work: queue.Queue[Job | None] = queue.Queue()
        results: queue.Queue[_Settled | _Abandoned] = queue.Queue()
        stop = threading.Event()
        waiting: set[threading.Event] = set()  # workers blocked until their Delivery is taken
        workers = [
            threading.Thread(
                target=self._worker, args=(work, results, stop, handing_over), name=f"smtp-{i}", daemon=True
            )
            for i in range(self.settings.pool_size)
        ]
        for worker in workers:
            worker.start()
        capacity = self.settings.pool_size * 2
        pending = iter(jobs)
        exhausted = False
        in_flight = 0
        error: BaseException | None = None
        interrupted: KeyboardInterrupt | None = None
        try:
            while True:
                while not exhausted and not stop.is_set() and in_flight < capacity:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                        break
                    work.put(job)
                    in_flight += 1
                if in_flight == 0:
                    break
                try:
                    item = self._next_result(results, stop, should_stop)
                except KeyboardInterrupt as e:
                    interrupted = interrupted or e
                    stop.set()
                    continue
                in_flight -= 1
                if isinstance(item, _Abandoned):
                    if item.error is not None and error is None:
                        error = item.error
                    continue
                waiting.add(item.taken)
                yield item.delivery  # resumed only once the caller has recorded it
                waiting.discard(item.taken)
                item.taken.set()
        finally:
            stop.set()  # before releasing the workers: none of them starts another message
            for taken in waiting:
                taken.set()
            for _ in workers:
                work.put(None)
            for worker in workers:
                worker.join(timeout=self.settings.timeout + 5)  # daemons: a stuck one is left behind
        if interrupted is not None:
            raise interrupted
        if error is not None:
            raise error

    @staticmethod
    def _next_result(
        results: queue.Queue[_Settled | _Abandoned],
        stop: threading.Event,
        should_stop: Callable[[], bool] | None,
    ) -> _Settled | _Abandoned:
        """The next settled job; meanwhile a true `should_stop()` sets `stop`, which wakes the workers."""
        if should_stop is None:
            return results.get()
        while True:
            if not stop.is_set() and should_stop():
                log.info("stopping: no new message or retry is started")
                stop.set()
            try:
                return results.get(timeout=_POLL)
            except queue.Empty:
                continue


def _reset(conn: smtplib.SMTP, code: int) -> None:
    """After a refusal: RSET (or close on 421, the server is going away), ignoring a hang-up."""
    if code == 421:
        conn.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()


def _quiet_reset(conn: smtplib.SMTP) -> None:
    """RSET after a transaction the client gave up before DATA; a connection that fails is closed."""
    try:
        conn.rset()
    except (OSError, smtplib.SMTPException):
        _close(conn)


def _close(conn: smtplib.SMTP | None) -> None:
    """Close a connection without waiting for the server; always returns None (the connection is gone)."""
    if conn is not None:
        try:
            conn.close()
        except OSError:
            log.debug("closing an SMTP connection failed", exc_info=True)
