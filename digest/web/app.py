"""The comms team's preview of the next issue (`digest preview`): a Starlette app over a `Workspace`.

The page shows the real `email.html` in a 600 px and a 375 px frame, the plain-text part, the entries with
their priority tags and reasons, controls that edit the issue draft (pin, drop, reorder, re-tag, intro),
the pre-send report, a test-send form and the Approve button. Every POST carries the CSRF token and
answers with a redirect back to the page (with a notice), so reloading never repeats an action.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from digest.compose.draft import Draft
from digest.errors import DigestError
from digest.pipeline import desk
from digest.pipeline.items import OneOffItem
from digest.web import edits
from digest.web.hosts import AllowedHosts, HostGuard, bound_names
from digest.web.pages import STATIC, render_message, render_page
from digest.web.security import (
    ACCESS_COOKIE,
    AccessGate,
    AccessMiddleware,
    Csrf,
    LoginThrottle,
    SecurityHeaders,
    error_handlers,
)
from digest.web.signin import (
    OPEN,
    USER_COOKIE,
    Identity,
    Sessions,
    SignInMiddleware,
    from_trusted_proxy,
    identity_of,
    stamp_of,
    to_sign_in,
)
from digest.web.view import entry_anchor, page_context, personalised
from digest.web.workspace import Workspace

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
MAX_TEST_ADDRESSES = 20
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: http: data:; "
        "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-robots-tag": "noindex, nofollow",
}
# The email is shown in a sandboxed frame: no script, no plugins, links open in a new tab.
EMAIL_HEADERS = {
    "content-security-policy": (
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
        "img-src https: http: data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
    ),
    "cache-control": "no-store",
}
_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
_VARIANT_NAME = re.compile(r"v-[0-9a-f]{12}")  # a topic variant's folder (digest.compose.variants)
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
Change = Callable[[Draft], Draft]


class Notices:
    """Short messages shown once after a POST redirects back (kept by a random key, the last 100)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, str]] = {}

    def add(self, kind: str, text: str) -> str:
        key = secrets.token_urlsafe(8)
        self._items[key] = (kind, text)
        while len(self._items) > 100:
            self._items.pop(next(iter(self._items)))
        return key

    def get(self, key: str | None) -> tuple[str, str] | None:
        return self._items.get(key) if key else None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def _audit_text(done: str) -> str:
    """A notice as an audit entry: "Dropped “X” from the issue." -> "dropped “X” from the issue"."""
    return (done[:1].lower() + done[1:]).rstrip(".")


RIGHT_WORDS = {
    "edit": "change the draft or send tests",
    "approve": "approve issues",
    "users": "manage users",
}


def require(request: Request, right: str) -> Identity:
    """The request's identity when its role has `right`; raises HTTPException 403 (nothing changes)."""
    who = identity_of(request)
    if not desk.allowed(who.role, right):
        log.warning(
            "preview: refused %s %s to %s (role %s)", request.method, request.url.path, who.name, who.role
        )
        role = f"your role ({who.role})" if who.role else "you"
        raise HTTPException(
            403, f"{role[:1].upper() + role[1:]} cannot {RIGHT_WORDS.get(right, right)}; nothing was changed."
        )
    return who


def actor_of(who: Identity) -> str:
    return who.name if who.signed_in else "preview user (no sign-in)"


def _message(error: Exception) -> str:
    if isinstance(error, DigestError):
        return error.message + (f" ({error.hint})" if error.hint else "")
    return str(error)


class DraftEdits:
    """Turns a control's form into a draft change and the notice to show once it is saved."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def title(self, entry_id: str) -> str:
        issue = self.workspace.snapshot.issue
        for item in issue.entries if issue else ():
            if item.entry.id == entry_id:
                return f"“{item.entry.title}”"
        return "the entry"

    def pin(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        return (lambda d: edits.pin(d, entry_id)), f"Pinned {self.title(entry_id)} to the highlights."

    def unpin(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        return (lambda d: edits.unpin(d, entry_id)), f"Unpinned {self.title(entry_id)}."

    def drop(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        return (lambda d: edits.drop(d, entry_id)), f"Dropped {self.title(entry_id)} from the issue."

    def restore(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        return (lambda d: edits.restore(d, entry_id)), "Restored the entry to the issue."

    def move(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        shown = _texts(form, "shown")
        step = -1 if _text(form, "direction") == "up" else 1
        in_highlights = _text(form, "list") == "highlights"
        issue = self.workspace.snapshot.issue
        source_pinned = [i.entry.id for i in issue.entries if i.entry.pinned] if issue else []

        def change(draft: Draft) -> Draft:
            ranks = edits.highlight_ranks(draft, source_pinned, shown) if in_highlights else None
            return edits.move(draft, shown, entry_id, step, ranks=ranks)

        return change, f"Moved {self.title(entry_id)} {'up' if step < 0 else 'down'}."

    def retag(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        if _text(form, "mode") == "auto":
            return (lambda d: edits.retag(d, entry_id, None)), "Back to keyword matching."
        known = {p.name for p in self.workspace.config.priorities}
        chosen = [v for v in _texts(form, "priority") if v in known]
        label = ", ".join(chosen) if chosen else "no priority"
        return (lambda d: edits.retag(d, entry_id, chosen)), f"Re-tagged {self.title(entry_id)}: {label}."

    def words(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        subject, preheader = _text(form, "subject"), _text(form, "preheader")
        said = f"subject “{' '.join(subject.split())}”" if subject.strip() else "the configured subject"
        return (lambda d: edits.set_words(d, subject, preheader)), f"Set the {said} and preheader."

    def reword(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        title, teaser = _text(form, "title"), _text(form, "teaser")
        was = self.title(entry_id)
        now = f"“{' '.join(title.split())}”" if title.strip() else "the source's title"
        return (lambda d: edits.reword(d, entry_id, title, teaser)), f"Reworded {was}: {now}."

    def intro(self, form: FormData, entry_id: str) -> tuple[Change, str]:
        text = _text(form, "intro")
        return (lambda d: edits.set_intro(d, text)), "Saved the editor's intro."


class PreviewApp:
    """The preview's endpoints, over one workspace; `create_preview_app` turns them into a Starlette app."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        access_token: str | None,
        csrf: Csrf,
        throttle: LoginThrottle,
        sessions: Sessions | None = None,
    ) -> None:
        self.workspace = workspace
        self.sessions = sessions or Sessions()
        self.csrf = csrf
        self.throttle = throttle
        self.gate = AccessGate(access_token)
        self.notices = Notices()
        self.edits = DraftEdits(workspace)
        self.lang = workspace.config.digest.locale.replace("_", "-")

    # --- helpers ------------------------------------------------------------------------------------

    def redirect(self, kind: str, text: str, anchor: str = "") -> RedirectResponse:
        key = self.notices.add(kind, text)
        return RedirectResponse(f"/?notice={key}{'#' + anchor if anchor else ''}", status_code=303)

    async def form_of(self, request: Request) -> FormData:
        form = await request.form()
        self.csrf.check(request, form.get(self.csrf.field))
        return form

    async def refused_if_sent(self, anchor: str = "top") -> Response | None:
        """The answer to a change of an issue whose sending started (read from state now), else None."""
        state = await run_in_threadpool(self.workspace.send_state)
        if state is None:
            return None
        log.warning("preview: refused a change to issue %s, whose sending has started", state.issue_id)
        return self.redirect("error", state.refusal(), anchor)

    def issue_file(self, name: str) -> Path:
        folder = self.workspace.snapshot.folder
        if folder is None or not (folder / name).is_file():
            raise HTTPException(404)
        return folder / name

    def check_links_soon(self) -> None:
        """Start checking the current email's links in the background (the page shows them when done)."""
        task = asyncio.get_running_loop().create_task(self.workspace.check_links())
        self.workspace.background.add(task)
        task.add_done_callback(self.workspace.background.discard)

    def error_page(self, request: Request, status_code: int, phrase: str, message: str | None) -> str:
        return render_message(
            lang=self.lang, title=phrase, heading=phrase, message=message or phrase, css="/static/site.css"
        )

    # --- pages --------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        notice = self.notices.get(request.query_params.get("notice"))
        context = await run_in_threadpool(page_context, self.workspace, request.query_params.get("variant"))
        eyes, audit = await run_in_threadpool(self.workspace.desk_state)
        who = identity_of(request)
        manage = desk.allowed(who.role, "users") and who.via == "password"
        users = await run_in_threadpool(self.workspace.users) if manage else []
        token, new_session = self.csrf.page_token(request)
        body = render_page(
            "preview.html",
            lang=self.lang,
            title=f"Preview: {self.workspace.config.digest.title}",
            css="/static/site.css",
            csrf_token=token,
            notice=notice,
            access_protected=self.gate.token is not None,
            site_name=self.workspace.config.digest.title,
            who=who,
            can_edit=desk.allowed(who.role, "edit"),
            can_approve=desk.allowed(who.role, "approve"),
            four_eyes=eyes,
            audit=audit,
            manage_users=manage,
            users=users,
            roles=desk.ROLES,
            **context,
        )
        response = HTMLResponse(body)
        self.csrf.set_session(response, new_session)
        return response

    async def email_html(self, request: Request) -> Response:
        text = self.issue_file("email.html").read_text(encoding="utf-8")
        text = personalised(text, self.workspace.config.web.base_url, escape=True)
        head = '<base target="_blank">'
        if request.query_params.get("frame") == "1":
            # In the 600 / 375 px frames, a desktop scroll bar would take ~15 px of the width the email
            # is shown at; phones overlay theirs, so hide it (the frame still scrolls).
            head += "<style>html { scrollbar-width: none; }</style>"
        text = _HEAD.sub(lambda m: m.group(0) + head, text, count=1)
        return HTMLResponse(text, headers=EMAIL_HEADERS)

    async def variant_html(self, request: Request) -> Response:
        """A topic variant's email.html (the picker's choice), personalised with the sample values."""
        name = str(request.path_params["name"])
        folder = self.workspace.snapshot.folder
        if folder is None or not _VARIANT_NAME.fullmatch(name):
            raise HTTPException(404)
        path = folder / "variants" / name / "email.html"
        if not path.is_file():
            raise HTTPException(404)
        text = personalised(path.read_text(encoding="utf-8"), self.workspace.config.web.base_url, escape=True)
        head = '<base target="_blank">'
        if request.query_params.get("frame") == "1":
            head += "<style>html { scrollbar-width: none; }</style>"
        text = _HEAD.sub(lambda m: m.group(0) + head, text, count=1)
        return HTMLResponse(text, headers=EMAIL_HEADERS)

    async def web_html(self, request: Request) -> Response:
        return HTMLResponse(self.issue_file("web.html").read_text(encoding="utf-8"), headers=EMAIL_HEADERS)

    async def email_txt(self, request: Request) -> Response:
        text = self.issue_file("email.txt").read_text(encoding="utf-8")
        text = personalised(text, self.workspace.config.web.base_url, escape=False)
        return PlainTextResponse(text, headers={"cache-control": "no-store"})

    async def priorities_css(self, request: Request) -> Response:
        """Each priority's colour as the left border of its tags (text stays dark on pale: readable)."""
        rules = [
            f".prio-{i} {{ border-left-color: {p.colour}; }}"
            for i, p in enumerate(self.workspace.config.priorities)
            if p.colour and _COLOUR.fullmatch(p.colour)
        ]
        return Response("\n".join(rules) + "\n", media_type="text/css", headers={"cache-control": "no-store"})

    async def status(self, request: Request) -> Response:
        w = self.workspace
        send_state = await run_in_threadpool(w.send_state)
        return JSONResponse(
            {
                "version": w.snapshot.version,
                "building": w.building,
                "links_version": w.links_version,
                "links_checking": w.links_checking,
                "read_only": send_state is not None,
            },
            headers={"cache-control": "no-store"},
        )

    async def links_fragment(self, request: Request) -> Response:
        context = await run_in_threadpool(page_context, self.workspace, request.query_params.get("variant"))
        return HTMLResponse(render_page("_links.html", **context))

    # --- actions ------------------------------------------------------------------------------------

    def draft_endpoint(
        self, describe: Callable[[FormData, str], tuple[Change, str]]
    ) -> Callable[[Request], object]:
        async def endpoint(request: Request) -> Response:
            form = await self.form_of(request)
            who = require(request, "edit")
            entry_id = _text(form, "entry")
            refused = await self.refused_if_sent()
            if refused is not None:
                return refused
            try:
                change, done = describe(form, entry_id)
                snapshot = await run_in_threadpool(
                    functools.partial(
                        self.workspace.edit_draft, change, actor=actor_of(who), what=_audit_text(done)
                    )
                )
            except DigestError as e:
                return self.redirect("error", _message(e), "entries")
            self.check_links_soon()
            if snapshot.error:
                return self.redirect("error", f"Saved, but the rebuild failed: {snapshot.error}", "top")
            return self.redirect("ok", done, entry_anchor(entry_id) if entry_id else "intro")

        return endpoint

    async def add_item(self, request: Request) -> Response:
        """The one-off item form: writes a curated Markdown item and rebuilds with it."""
        form = await self.form_of(request)
        who = require(request, "edit")
        refused = await self.refused_if_sent("add-item")
        if refused is not None:
            return refused
        item = OneOffItem(
            title=_text(form, "title"),
            link=_text(form, "link"),
            summary=_text(form, "summary"),
            day=_text(form, "date"),
            priority=_text(form, "priority"),
            image=_text(form, "image"),
            image_alt=_text(form, "image_alt"),
            pinned=_text(form, "pinned") == "yes",
        )
        try:
            path, snapshot = await run_in_threadpool(
                functools.partial(self.workspace.add_item, item, actor=actor_of(who))
            )
        except DigestError as e:
            return self.redirect("error", _message(e), "add-item")
        self.check_links_soon()
        if snapshot.error:
            return self.redirect(
                "error", f"Saved {path.name}, but the rebuild failed: {snapshot.error}", "top"
            )
        offline = " (offline: it reaches the issue at the next fetch)" if self.workspace.offline else ""
        return self.redirect(
            "ok", f"Added “{' '.join(item.title.split())}” as {path.name}{offline}.", "add-item"
        )

    async def manage_user(self, request: Request) -> Response:
        """An admin adds or removes a preview user (POST /users/add, /users/remove)."""
        form = await self.form_of(request)
        who = require(request, "users")
        action = request.url.path.rsplit("/", 1)[1]
        try:
            done = await run_in_threadpool(
                functools.partial(
                    self.workspace.manage_user,
                    action,
                    _text(form, "username").strip(),
                    actor=who.name,
                    role=_text(form, "role"),
                    password=_text(form, "password"),
                )
            )
        except DigestError as e:
            return self.redirect("error", _message(e), "users")
        if action == "remove":
            self.sessions.end_user(_text(form, "username").strip())
        return self.redirect("ok", done[:1].upper() + done[1:] + ".", "users")

    async def refresh(self, request: Request) -> Response:
        await self.form_of(request)
        who = require(request, "edit")
        snapshot = await run_in_threadpool(
            functools.partial(self.workspace.rebuild_by, actor_of(who), fetch=True)
        )
        self.check_links_soon()
        if snapshot.error:
            return self.redirect("error", f"The rebuild failed: {snapshot.error}", "top")
        if snapshot.held:
            count = len(snapshot.new_since_approval)
            fetched = "Fetched the feeds" if snapshot.fetched else "Checked the stored entries (offline)"
            return self.redirect(
                "ok",
                f"{fetched}: {count} new {'entry' if count == 1 else 'entries'} since approval."
                " The approved issue is kept as it is.",
                "approval",
            )
        done = "Fetched the feeds and rebuilt" if snapshot.fetched else "Rebuilt (offline: nothing fetched)"
        return self.redirect("ok", f"{done} the preview.", "top")

    async def rebuild_approved(self, request: Request) -> Response:
        """The explicit rebuild of an approved issue with what changed since (it voids the approval)."""
        await self.form_of(request)
        who = require(request, "edit")
        refused = await self.refused_if_sent("approval")
        if refused is not None:
            return refused
        snapshot = await run_in_threadpool(
            functools.partial(self.workspace.rebuild_by, actor_of(who), force=True)
        )
        self.check_links_soon()
        if snapshot.error:
            return self.redirect("error", f"The rebuild failed: {snapshot.error}", "top")
        return self.redirect(
            "ok", "Rebuilt with the new entries: review the issue and approve it again.", "approval"
        )

    async def approve(self, request: Request) -> Response:
        form = await self.form_of(request)
        who = require(request, "approve")
        refused = await self.refused_if_sent("approval")
        if refused is not None:
            return refused
        try:
            text = await run_in_threadpool(
                functools.partial(
                    self.workspace.approve,
                    who.name if who.signed_in else _text(form, "name"),
                    seen_html_sha256=_text(form, "html_sha256"),
                    seen_text_sha256=_text(form, "text_sha256"),
                    seen_variants_sha256=_text(form, "variants_sha256")
                    if "variants_sha256" in form
                    else None,
                    signed_in=who.signed_in,
                )
            )
        except DigestError as e:
            return self.redirect("error", _message(e), "approval")
        return self.redirect("ok", text, "approval")

    async def test_send(self, request: Request) -> Response:
        form = await self.form_of(request)
        who = require(request, "edit")
        refused = await self.refused_if_sent()
        if refused is not None:
            return refused
        addresses = tuple(a for a in re.split(r"[\s,;]+", _text(form, "to")) if a)
        if not addresses:
            return self.redirect("error", "Type at least one address to send the test to.", "test-send")
        if len(addresses) > MAX_TEST_ADDRESSES:
            return self.redirect(
                "error", f"A test goes to at most {MAX_TEST_ADDRESSES} addresses.", "test-send"
            )
        try:
            kind, text = await run_in_threadpool(
                functools.partial(self.workspace.test_send, addresses, actor=actor_of(who))
            )
        except DigestError as e:
            return self.redirect("error", _message(e), "test-send")
        return self.redirect(kind, text, "test-send")

    async def login(self, request: Request) -> Response:
        """The access-token form: no CSRF token on it (anyone may see it); wrong tokens are throttled."""
        error = None
        if request.method == "POST":
            self.csrf.check_origin(request)
            client = self.throttle.client_of(request)
            wait = self.throttle.retry_after(client)
            if wait is not None:
                log.warning("preview: throttled logins from %s (too many wrong access tokens)", client)
                return self.throttle.refusal(wait)
            form = await request.form()
            if self.gate.check_token(_text(form, "token")):
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(
                    ACCESS_COOKIE, self.gate.cookie_value, httponly=True, samesite="strict", max_age=12 * 3600
                )
                return response
            self.throttle.failed(client)
            log.warning("preview: refused a wrong access token from %s", client)
            error = "That access token is not right."
        body = render_page(
            "login.html",
            lang=self.lang,
            title="Preview: access token",
            css="/static/site.css",
            error=error,
            site_name=self.workspace.config.digest.title,
        )
        return HTMLResponse(body, status_code=401 if error else 200)

    # --- sign-in ------------------------------------------------------------------------------------

    async def identify(self, request: Request) -> Identity | Response:
        """Who sent the request (see `digest.web.signin`), or the answer when nobody acceptable did."""
        settings = self.workspace.config.preview
        if settings.auth == "header":
            if not from_trusted_proxy(request, settings.trusted_proxies):
                client = request.client.host if request.client else "unknown"
                log.warning("preview: refused a request from %s, which is not a trusted proxy", client)
                return PlainTextResponse(
                    "Sign in through the organisation's sign-in proxy: this address is not trusted.\n",
                    status_code=403,
                )
            name = request.headers.get(settings.user_header, "").strip()
            role = desk.header_role(self.workspace.config, name) if name else None
            if role is None:
                log.warning("preview: the proxy named %r, who has no role in [preview.roles]", name)
                return PlainTextResponse(
                    f"{name or 'This user'} has no role in this preview ([preview.roles]).\n", status_code=403
                )
            return Identity(name, role, "header")
        if not await run_in_threadpool(self.workspace.has_users):
            return OPEN
        session = self.sessions.session_of(request.cookies.get(USER_COOKIE))
        user = await run_in_threadpool(self.workspace.user, session[0]) if session else None
        if session is None or user is None or stamp_of(user.password_hash) != session[1]:
            return to_sign_in(request)  # no session, or its user was removed or given a new password
        return Identity(user.name, user.role, "password")

    async def signin(self, request: Request) -> Response:
        """The user name and password form: no CSRF token (anyone may see it); failures are throttled."""
        if self.workspace.config.preview.auth == "header":
            raise HTTPException(404)  # the proxy signs people in
        error = None
        if request.method == "POST":
            self.csrf.check_origin(request)
            client = self.throttle.client_of(request)
            wait = self.throttle.retry_after(client)
            if wait is not None:
                log.warning("preview: throttled sign-ins from %s (too many wrong passwords)", client)
                return self.throttle.refusal(wait)
            form = await request.form()
            name = _text(form, "username").strip()
            user = await run_in_threadpool(self.workspace.authenticate, name, _text(form, "password"))
            if user is not None:
                hours = self.workspace.config.preview.session_hours
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(
                    USER_COOKIE,
                    self.sessions.start(user.name, hours, stamp_of(user.password_hash)),
                    max_age=int(hours * 3600),
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                    path="/",
                )
                self.csrf.set_session(response, self.csrf.new_session())  # a fresh CSRF session too
                log.info("preview: %s signed in", user.name)
                return response
            self.throttle.failed(client)
            log.warning("preview: a failed sign-in from %s", client)
            error = "That user name and password do not match."
        body = render_page(
            "signin.html",
            lang=self.lang,
            title="Preview: sign in",
            css="/static/site.css",
            error=error,
            site_name=self.workspace.config.digest.title,
        )
        return HTMLResponse(body, status_code=401 if error else 200)

    async def signout(self, request: Request) -> Response:
        await self.form_of(request)
        self.sessions.end(request.cookies.get(USER_COOKIE))
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(USER_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def routes(self) -> list[BaseRoute]:
        e = self.edits
        post = ["POST"]
        return [
            Route("/", self.home),
            Route("/email.html", self.email_html),
            Route("/email.txt", self.email_txt),
            Route("/web.html", self.web_html),
            Route("/variant/{name}/email.html", self.variant_html),
            Route("/priorities.css", self.priorities_css),
            Route("/api/status", self.status),
            Route("/report/links", self.links_fragment),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/signin", self.signin, methods=["GET", "POST"]),
            Route("/signout", self.signout, methods=post),
            Route("/refresh", self.refresh, methods=post),
            Route("/items/add", self.add_item, methods=post),
            Route("/users/add", self.manage_user, methods=post),
            Route("/users/remove", self.manage_user, methods=post),
            Route("/approve", self.approve, methods=post),
            Route("/rebuild", self.rebuild_approved, methods=post),
            Route("/test-send", self.test_send, methods=post),
            *(
                Route(f"/draft/{name}", self.draft_endpoint(action), methods=post)
                for name, action in (
                    ("pin", e.pin),
                    ("unpin", e.unpin),
                    ("drop", e.drop),
                    ("restore", e.restore),
                    ("move", e.move),
                    ("retag", e.retag),
                    ("intro", e.intro),
                    ("words", e.words),
                    ("reword", e.reword),
                )
            ),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]


def create_preview_app(
    workspace: Workspace,
    *,
    access_token: str | None = None,
    watch_interval: float = 1.0,
    csrf: Csrf | None = None,
    host: str = "127.0.0.1",
    login_throttle: LoginThrottle | None = None,
    sessions: Sessions | None = None,
) -> Starlette:
    """The preview app: builds at start-up, then watches its inputs every `watch_interval` seconds.

    `access_token`: when set, every request needs it (see `security.AccessGate`). `host`: the address
    it is bound to; only requests addressed to it, the loopback names (with the port) or a name in
    `[preview] allowed_hosts` are answered (see `hosts.HostGuard`).
    """
    throttle = login_throttle or LoginThrottle()
    preview = PreviewApp(
        workspace, access_token=access_token, csrf=csrf or Csrf(), throttle=throttle, sessions=sessions
    )
    hosts = AllowedHosts(bound_names(host), lambda: workspace.config.preview.allowed_hosts)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def first_build() -> None:
            await asyncio.to_thread(workspace.rebuild, fetch=True)
            await workspace.check_links()

        tasks = [asyncio.create_task(first_build()), asyncio.create_task(workspace.watch(watch_interval))]
        try:
            yield
        finally:
            for task in (*tasks, *workspace.background):
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            workspace.close_state()

    return Starlette(
        routes=preview.routes(),
        middleware=[
            Middleware(SecurityHeaders, headers=PAGE_HEADERS),
            Middleware(HostGuard, hosts=hosts),
            Middleware(
                AccessMiddleware,
                gate=preview.gate,
                open_paths=("/login", "/static/site.css"),
                throttle=throttle,
            ),
            Middleware(
                SignInMiddleware, resolve=preview.identify, open_paths=("/signin", "/static/site.css")
            ),
        ],
        exception_handlers=error_handlers(preview.error_page),
        lifespan=lifespan,
        max_body_size=MAX_BODY,
    )
