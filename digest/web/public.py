"""The public app of `digest serve`: the static web archive, the unsubscribe pages, the Amazon SES
notification hook (`POST /hooks/ses`, see `digest.pipeline.bounces.handle_sns`), and with
`[subscribe] enabled = true` the reader pages (`/subscribe`, `/confirm`, `/resubscribe`, `/preferences`,
see `digest.web.signup`).

`GET /unsubscribe?token=...` only shows a confirmation form: link scanners (Microsoft Safe Links and the
like) follow every link in an email, so a GET never unsubscribes anyone. `POST /unsubscribe` unsubscribes,
both from that form and as the RFC 8058 one-click POST a mail client sends (body
`List-Unsubscribe=One-Click`, token in the URL): the answer is 200 with a page, never a redirect.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from digest.config import BounceSettings, Config
from digest.deliver.bounces import ses
from digest.deliver.tokens import BadTokenError, StaleTokenError
from digest.pipeline import bounces, web
from digest.web.hosts import RelativeRedirects
from digest.web.pages import STATIC, render_message, render_page
from digest.web.security import Csrf, SecurityHeaders, error_handlers
from digest.web.signup import reader_routes

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
ONE_CLICK = "One-Click"
PUBLIC_HEADERS = {
    # No script runs on any public page; issue pages (the build's web.html) carry inline styles.
    "content-security-policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src https: http: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}
# The token is in the address: keep it out of caches, Referer headers and search engines.
UNSUBSCRIBE_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-robots-tag": "noindex, nofollow",
}


def _csrf_secret(config: Config, state: Callable[[], AbstractContextManager[web.Store]]) -> bytes:
    with state() as db:
        return web.csrf_secret(config, db)


def create_public_app(config: Config, *, clock: Callable[[], datetime]) -> Starlette:
    """The app `digest serve` runs: `[web] archive_dir` as static files, and `/unsubscribe`."""
    lang = config.digest.locale.replace("_", "-")
    footer = config.theme.organisation or config.digest.title
    shared = web.SharedState()  # PostgreSQL: one pool for the app's life
    state = functools.partial(shared.use, config)
    csrf = Csrf(functools.partial(_csrf_secret, config, state))  # shared by every process and host

    def page(name: str, status: int = 200, **context: object) -> HTMLResponse:
        html = render_page(
            name,
            lang=lang,
            css="assets/site.css",
            site_name=config.digest.title,
            footer=footer,
            archive_url="./",
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=UNSUBSCRIBE_HEADERS)

    def bad_link(reason: str) -> HTMLResponse:
        return page(
            "message.html",
            status=400,
            title="Unsubscribe link not valid",
            heading="This unsubscribe link is not valid",
            message=(
                "The link may have been cut short or changed. Open the unsubscribe link from the email "
                "again, or reply to the email and ask to be removed."
            ),
            detail=reason,
        )

    def stale_link() -> HTMLResponse:
        # 200, not an error: the link is ours, it just belongs to a subscription that has ended.
        return page(
            "message.html",
            title="Unsubscribe link no longer valid",
            heading="This unsubscribe link is no longer valid",
            message=(
                "It comes from an email sent before this address was subscribed again, or the address "
                "has been removed from the list since. Nothing has been changed. To unsubscribe, use the "
                "link in the most recent email."
            ),
            detail=None,
        )

    async def unsubscribe(request: Request) -> Response:
        token = request.query_params.get("token", "")
        one_click = False
        if request.method == "POST":
            form = await request.form()
            one_click = form.get("List-Unsubscribe") == ONE_CLICK
            submitted = form.get("token")
            if isinstance(submitted, str) and submitted:
                token = submitted
        try:
            if request.method == "POST":
                how = "one-click" if one_click else "unsubscribe page"
                outcome = await run_in_threadpool(_unsubscribe, token, how)
            else:
                outcome = await run_in_threadpool(_check, token)
        except StaleTokenError:
            log.info("an unsubscribe link of an ended subscription was used (%s)", request.method)
            return stale_link()
        except BadTokenError as e:
            log.info("refused an unsubscribe request with a bad token (%s)", request.method)
            return bad_link(str(e).capitalize() + ".")
        csrf_token, session = csrf.page_token(request)
        response = page(
            "unsubscribe.html",
            title=f"Unsubscribe from {config.digest.title}",
            outcome=outcome,
            token=token,
            confirm=request.method != "POST",
            list_title=config.digest.title,
            # An unsubscribed reader may join again from here (double opt-in) when sign-up is enabled.
            resubscribe=config.subscribe.enabled,
            csrf_token=csrf_token,
        )
        csrf.set_session(response, session)
        return response

    def _check(token: str) -> web.UnsubscribeOutcome:
        with state() as db:
            return web.check_unsubscribe_token(config, db, token)

    def _unsubscribe(token: str, how: str) -> web.UnsubscribeOutcome:
        with state() as db:
            return web.unsubscribe(config, db, token, now=clock(), how=how)

    bounce_settings = config.bounces or BounceSettings()

    def _fetch_cert(url: str) -> bytes:
        return ses.fetch_https(url, ca_file=bounce_settings.sns_ca_file)

    certs = ses.CertificateCache(_fetch_cert)

    async def ses_hook(request: Request) -> Response:
        body = await request.body()
        outcome = await run_in_threadpool(_ses, body)
        return PlainTextResponse(outcome.text + "\n", status_code=outcome.status)

    def _ses(body: bytes) -> bounces.HookOutcome:
        with state() as db:
            return bounces.handle_sns(config, db, body, now=clock(), certs=certs, confirm=_fetch_cert)

    def site_css(request: Request) -> Response:
        return FileResponse(STATIC / "site.css", media_type="text/css")

    def error_page(request: Request, status: int, phrase: str, message: str | None) -> str:
        return render_message(
            lang=lang, title=phrase, heading=phrase, message=message or phrase, css="/assets/site.css"
        )

    config.web.archive_dir.mkdir(parents=True, exist_ok=True)
    routes = [
        Route("/unsubscribe", unsubscribe, methods=["GET", "POST"]),
        *reader_routes(config, clock=clock, page=page, state=state, csrf=csrf),
        Route("/hooks/ses", ses_hook, methods=["POST"]),
        Route("/assets/site.css", site_css),
        Mount("/", StaticFiles(directory=config.web.archive_dir, html=True)),
    ]
    return Starlette(
        routes=routes,
        # Redirects (a folder without its slash, /issues/2025-W19 -> ./2025-W19/) are relative: they never
        # carry the request's Host, and stay right behind a proxy that serves the site under a path.
        middleware=[Middleware(SecurityHeaders, headers=PUBLIC_HEADERS), Middleware(RelativeRedirects)],
        exception_handlers=error_handlers(error_page),
        max_body_size=MAX_BODY,
        lifespan=shared.lifespan,
    )
