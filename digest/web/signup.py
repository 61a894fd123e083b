"""The reader pages of `digest serve` (when `[subscribe] enabled = true`): sign-up, confirmation,
resubscribe and the preference page. State is reached only through `digest.pipeline.signup`.

No abuse through the form:
- every sign-up POST answers the same "check your inbox" page, for a new, pending, active or suppressed
  address (no enumeration); only an address that is not an address at all gets the form back;
- a hidden honeypot field (`website`) and a signed timestamp of when the form was served: a form sent
  faster than `MIN_FORM_SECONDS` or later than `MAX_FORM_SECONDS`, or with the honeypot filled, is refused
  quietly (the same page, nothing sent);
- at most `[subscribe] per_ip_per_hour` sign-ups per client address an hour (form, resubscribe and change
  of address together; `signup.allow_signup`), and at most one confirmation email per address per 10
  minutes: both kept in state, so every process and host serving it shares them and a restart keeps
  them (no IP address is stored: a keyed hash of it);
- CSRF protection as the preview's (a session cookie and an HMAC of it in each form, Origin checked).
GETs never change anything: the confirmation link opens a page with a Confirm button.

Topics (issue 15 item 4): with `[[priorities]]` configured, the sign-up form and the preference page show
a "Topics" fieldset with one checkbox per priority; none ticked means all topics (the whole issue). A name
that is not a configured priority gets the page back with a 400 naming the field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest.config import Config
from digest.deliver.reader_tokens import ExpiredTokenError, form_age, form_stamp
from digest.deliver.tokens import BadTokenError, StaleTokenError
from digest.errors import InvalidValueError
from digest.pipeline import signup
from digest.pipeline.web import Store
from digest.web.security import Csrf

log = logging.getLogger(__name__)

MIN_FORM_SECONDS = 2.0
MAX_FORM_SECONDS = 24 * 3600.0

Page = Callable[..., HTMLResponse]


def _text(form: object, key: str) -> str:
    value = form.get(key) if hasattr(form, "get") else None
    return value if isinstance(value, str) else ""


def _ticked(form: object) -> list[str]:
    """The topics ticked in a posted form (the `topics` checkboxes)."""
    values = form.getlist("topics") if hasattr(form, "getlist") else []
    return [v for v in values if isinstance(v, str)]


def reader_routes(  # noqa: PLR0915 - one closure per page, sharing the app's helpers
    config: Config,
    *,
    clock: Callable[[], datetime],
    page: Page,
    state: Callable[[], AbstractContextManager[Store]],
    csrf: Csrf | None = None,
) -> list[Route]:
    """The routes of the reader pages; none when `[subscribe] enabled` is false."""
    settings = config.subscribe
    if not settings.enabled:
        return []
    csrf = csrf or Csrf()
    title = config.digest.title
    topics = tuple((p.name, p.summary) for p in config.priorities)  # none configured: no fieldset

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def allowed(request: Request) -> bool:
        with state() as db:
            return signup.allow_signup(config, db, client_of(request), now=clock())

    def with_session(response: HTMLResponse, session: str | None) -> HTMLResponse:
        csrf.set_session(response, session)
        return response

    def secret() -> str:
        with state() as db:
            return signup.form_secret(config, db)

    def message(heading: str, text: str, *, status: int = 200) -> HTMLResponse:
        return page("message.html", status=status, title=heading, heading=heading, message=text, detail=None)

    def forbidden() -> HTMLResponse:
        return message(
            "This form has expired",
            "Go back, reload the page and try again.",
            status=403,
        )

    def bad_link(error: BadTokenError) -> HTMLResponse:
        if isinstance(error, ExpiredTokenError):
            return message(
                "This link has expired",
                f"Confirmation links work for {settings.confirm_within_hours} hours."
                " Sign up again to get a new one.",
            )
        if isinstance(error, StaleTokenError):
            return message(
                "This link is no longer valid",
                "It has been used already, or a newer email was sent. Use the link in the most recent email.",
            )
        return message(
            "This link is not valid",
            "The link may have been cut short or changed. Open it from the email again.",
            status=400,
        )

    def check_inbox() -> HTMLResponse:
        return page(
            "subscribe_sent.html",
            title="Check your inbox",
            list_title=title,
            hours=settings.confirm_within_hours,
        )

    def form_page(
        request: Request,
        *,
        email: str = "",
        name: str = "",
        error: str | None = None,
        error_field: str = "email",
        chosen: tuple[str, ...] = (),
    ) -> HTMLResponse:
        token, session = csrf.page_token(request)
        stamp = form_stamp(secret(), at=clock())
        response = page(
            "subscribe.html",
            status=400 if error else 200,
            title=f"Subscribe to {title}",
            list_title=title,
            csrf_token=token,
            stamp=stamp,
            email=email,
            reader_name=name,
            error=error,
            error_field=error_field,
            topics=topics,
            chosen=frozenset(n.casefold() for n in chosen),
            consent_text=settings.consent_text,
            privacy_url=settings.privacy_url,
        )
        return with_session(response, session)

    async def subscribe(request: Request) -> Response:
        if request.method == "GET":
            return await run_in_threadpool(form_page, request)
        form = await request.form()
        try:
            csrf.check(request, form.get(csrf.field))
        except HTTPException:
            return forbidden()
        email, name = _text(form, "email").strip(), _text(form, "name").strip()
        age = await run_in_threadpool(lambda: form_age(secret(), _text(form, "stamp"), now=clock()))
        if _text(form, "website") or age is None or not MIN_FORM_SECONDS <= age <= MAX_FORM_SECONDS:
            log.info("a sign-up was refused quietly (honeypot or form timing)")
            return check_inbox()
        ticked = _ticked(form)
        if "@" not in email:
            return await run_in_threadpool(
                lambda: form_page(
                    request,
                    email=email,
                    name=name,
                    chosen=tuple(ticked),
                    error="Enter an email address like name@example.org",
                )
            )
        try:
            chosen = signup.read_topics(config, ticked)
        except InvalidValueError as e:
            problem = str(e)
            return await run_in_threadpool(
                lambda: form_page(
                    request,
                    email=email,
                    name=name,
                    chosen=tuple(ticked),
                    error=problem,
                    error_field="topics",
                )
            )
        if not await run_in_threadpool(allowed, request):
            log.info(
                "a sign-up was refused quietly (more than %d from one client this hour)",
                settings.per_ip_per_hour,
            )
            return check_inbox()
        try:
            outcome = await run_in_threadpool(
                _sign_up, email, name, client_of(request), str(request.url.path), chosen
            )
        except InvalidValueError:
            return await run_in_threadpool(
                lambda: form_page(
                    request,
                    email=email,
                    name=name,
                    chosen=chosen,
                    error="Enter an email address like name@example.org",
                )
            )
        log.info("sign-up form: %s", outcome)
        return check_inbox()

    def _sign_up(email: str, name: str, client: str, path: str, chosen: tuple[str, ...]) -> str:
        with state() as db:
            return signup.sign_up(
                config,
                db,
                email,
                name=name or None,
                now=clock(),
                source=path,
                client_ip=client,
                topics=chosen if topics else None,
            )

    async def confirm(request: Request) -> Response:
        token = request.query_params.get("token", "")
        if request.method == "POST":
            form = await request.form()
            token = _text(form, "token") or token
            try:
                csrf.check(request, form.get(csrf.field))
            except HTTPException:
                return forbidden()
        try:
            if request.method == "POST":
                found = await run_in_threadpool(_confirm, token)
                return page(
                    "confirm.html",
                    title="Subscription confirmed",
                    confirmed=True,
                    change=found[1],
                    email=found[0],
                    list_title=title,
                    token=token,
                    csrf_token="",
                )
            view = await run_in_threadpool(_check, token)
        except BadTokenError as e:
            return bad_link(e)
        csrf_token, session = csrf.page_token(request)
        response = page(
            "confirm.html",
            title=f"Confirm your subscription to {title}",
            confirmed=False,
            change=view.change,
            email=view.email,
            list_title=title,
            token=token,
            csrf_token=csrf_token,
        )
        return with_session(response, session)

    def _check(token: str) -> signup.PendingView:
        with state() as db:
            return signup.check_confirmation(config, db, token, now=clock())

    def _confirm(token: str) -> tuple[str, bool]:
        with state() as db:
            view = signup.check_confirmation(config, db, token, now=clock())
            found = signup.confirm(config, db, token, now=clock())
            return found.email, view.change

    async def resubscribe(request: Request) -> Response:
        form = await request.form()
        try:
            csrf.check(request, form.get(csrf.field))
        except HTTPException:
            return forbidden()
        token = _text(form, "token")
        if not await run_in_threadpool(allowed, request):
            return check_inbox()
        try:
            outcome = await run_in_threadpool(_resubscribe, token, client_of(request))
        except BadTokenError as e:
            return bad_link(e)
        log.info("resubscribe request: %s", outcome)
        return check_inbox()

    def _resubscribe(token: str, client: str) -> str:
        with state() as db:
            return signup.request_resubscribe(config, db, token, now=clock(), client_ip=client)

    async def preferences(request: Request) -> Response:
        token = request.query_params.get("token", "")
        notice: str | None = None
        error: str | None = None
        error_field = ""
        if request.method == "POST":
            form = await request.form()
            token = _text(form, "token") or token
            try:
                csrf.check(request, form.get(csrf.field))
            except HTTPException:
                return forbidden()
            action = _text(form, "action")
            try:
                if action == "unsubscribe":
                    email = await run_in_threadpool(_unsubscribe, token)
                    return page(
                        "message.html",
                        title="You have been unsubscribed",
                        heading="You have been unsubscribed",
                        message=f"{email} will not receive {title} any more.",
                        detail=None,
                    )
                if action == "name":
                    await run_in_threadpool(_name, token, _text(form, "name"))
                    notice = "Your name has been saved."
                elif action in ("topics", "all_topics"):
                    names = _ticked(form) if action == "topics" else []
                    try:
                        held = await run_in_threadpool(_topics, token, names)
                        notice = _topics_notice(held)
                    except InvalidValueError as e:
                        error, error_field = str(e), "topics"
                elif action == "address":
                    if not await run_in_threadpool(allowed, request):
                        notice = _address_notice()
                    else:
                        try:
                            await run_in_threadpool(_address, token, _text(form, "email"), client_of(request))
                            notice = _address_notice()
                        except InvalidValueError:
                            error = "Enter an email address like name@example.org"
            except BadTokenError as e:
                return bad_link(e)
        try:
            found = await run_in_threadpool(_subscriber, token)
        except BadTokenError as e:
            return bad_link(e)
        csrf_token, session = csrf.page_token(request)
        response = page(
            "preferences.html",
            status=400 if error else 200,
            title=f"Your {title} preferences",
            list_title=title,
            email=found[0],
            reader_name=found[1] or "",
            token=token,
            csrf_token=csrf_token,
            notice=notice,
            error=error,
            error_field=error_field,
            topics=topics,
            chosen=frozenset(n.casefold() for n in found[2]),
        )
        return with_session(response, session)

    def _topics_notice(held: tuple[str, ...]) -> str:
        if not held:
            return "Your topics have been saved: you will get all topics."
        return f"Your topics have been saved: {', '.join(held)}."

    def _address_notice() -> str:
        return (
            "If the new address can receive this newsletter, we have sent it a link to confirm. "
            "This address keeps receiving it until then."
        )

    def _subscriber(token: str) -> tuple[str, str | None, tuple[str, ...]]:
        with state() as db:
            found = signup.preferences_subscriber(config, db, token)
            return found.email, found.name, signup.current_topics(db, found)

    def _topics(token: str, names: list[str]) -> tuple[str, ...]:
        with state() as db:
            return signup.change_topics(config, db, token, names, now=clock())

    def _name(token: str, name: str) -> None:
        with state() as db:
            signup.change_name(config, db, token, name, now=clock())

    def _address(token: str, email: str, client: str) -> None:
        with state() as db:
            signup.change_address(config, db, token, email, now=clock(), client_ip=client)

    def _unsubscribe(token: str) -> str:
        with state() as db:
            return signup.unsubscribe_from_preferences(config, db, token, now=clock()).email

    return [
        Route("/subscribe", subscribe, methods=["GET", "POST"]),
        Route("/confirm", confirm, methods=["GET", "POST"]),
        Route("/resubscribe", resubscribe, methods=["POST"]),
        Route("/preferences", preferences, methods=["GET", "POST"]),
    ]
