"""Readers of the larger tables of `config.toml`: sources, priorities, theme, delivery, smtp, fetch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from digest.config.bounces import address_problem
from digest.config.schema import (
    SELECT_KEYS,
    DeliverySettings,
    FetchSettings,
    Priority,
    Security,
    Selectors,
    SmtpSettings,
    Source,
    SourceKind,
    SubscriberSettings,
    SubscribeSettings,
    ThemeSettings,
    Transport,
)
from digest.config.table import COLOUR, Table, checked, http_url, local_path
from digest.errors import InvalidValueError

GLOB_CHARS = re.compile(r"[*?\[]")
MAX_FETCH_TIMEOUT = 600.0  # seconds; one request waiting longer than 10 minutes is a dead server
MAX_RATE_PER_SECOND = 10_000.0  # [smtp] rate_per_second; the benchmarks send at it


def read_source(table: Table, root: Path, fetch: FetchSettings) -> Source | None:
    name = table.text("name")
    url = table.text("url")
    category = table.text("category", "News")
    timeout = table.number("timeout", fetch.timeout, maximum=MAX_FETCH_TIMEOUT)
    max_entries = table.integer("max_entries", None, minimum=1, maximum=100_000)
    user_agent = table.text("user_agent", fetch.user_agent, header=True)
    enabled = table.boolean("enabled", True)
    select, date_format, enrich = read_page_keys(table)
    table.finish()
    if not isinstance(url, str) or not url.strip():
        return None
    kind: SourceKind
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        if not http_url(table, "url", url):
            return None
        kind, location = "http", url
    elif scheme and len(scheme) > 1:
        table.problem("url", f"{url!r}: only http(s) URLs and local paths are supported, not {scheme}:")
        return None
    elif GLOB_CHARS.search(url):
        fixed = Path(url.split("*")[0].split("?")[0].split("[")[0])
        base = fixed if url.endswith(("/", "\\")) or not fixed.name else fixed.parent
        if local_path(table, "url", str(base) or ".", root, must_exist=True) is None:
            return None
        if ".." in Path(url).parts:
            table.problem("url", f"{url!r}: a glob may not contain '..'")
            return None
        kind, location = "glob", str(root.resolve() / url)
    else:
        path = local_path(table, "url", url, root, must_exist=True)
        if path is None:
            return None
        kind, location = "file", str(path)
    if not isinstance(name, str) or not isinstance(category, str):
        return None
    return Source(
        name=name,
        url=url,
        kind=kind,
        location=location,
        category=category,
        timeout=timeout,
        max_entries=max_entries,
        user_agent=user_agent,
        enabled=enabled,
        select=select,
        date_format=date_format,
        enrich=enrich,
    )


def read_page_keys(table: Table) -> tuple[Selectors | None, str, bool]:
    """`kind`, `[sources.select]`, `date_format` and `enrich` of one source (HTML listings, enrichment)."""
    kind = table.choice("kind", ("feed", "html"), "feed")
    date_format = table.text("date_format", "auto")
    if isinstance(date_format, str) and "date_format" in table.data:
        from digest.ingest.parse.dates import pattern_problem  # noqa: PLC0415 - config stays light to import

        checked(table, "date_format", date_format, pattern_problem)
    enrich = table.boolean("enrich", False)
    has_select = "select" in table.data
    sel = table.table("select")
    values: dict[str, str] = {}
    for key in SELECT_KEYS:
        value = sel.text(key, None)
        if isinstance(value, str):
            problem = selector_problem(value)
            if problem:
                sel.problem(key, problem)
            else:
                values[key] = value
    sel.finish()
    if kind != "html":
        if has_select:
            table.problem("select", 'is only read when kind = "html" (add kind = "html" to this source)')
        return None, date_format if isinstance(date_format, str) else "auto", bool(enrich)
    for key in ("item", "title"):
        if key not in sel.data:
            sel.problem(key, 'is required for kind = "html" (a CSS selector, e.g. ".news-card")')
    if "item" not in values or "title" not in values:
        return None, "auto", False
    return (
        Selectors(**values),
        date_format if isinstance(date_format, str) else "auto",
        bool(enrich),
    )


def selector_problem(value: str) -> str | None:
    """Why `value` (a CSS selector, optionally `selector@attribute`) is not usable, or None."""
    from digest.ingest.parse.select import split_selector  # noqa: PLC0415 - lxml/cssselect load only when used

    try:
        split_selector(value)
    except InvalidValueError as e:
        return str(e)
    return None


def read_priority(table: Table) -> Priority | None:
    name = table.text("name")
    summary = table.text("summary", "")
    link = table.text("link", None)
    if link is not None:
        http_url(table, "link", link)
    keywords = table.strings("keywords")
    if "keywords" in table.data and not keywords:
        table.problem("keywords", "needs at least one word or phrase")
    categories = table.strings("categories")
    colour = table.text("colour", None)
    if isinstance(colour, str) and not COLOUR.match(colour):
        table.problem("colour", f"{colour!r} is not a #RRGGBB colour")
    table.finish()
    if not isinstance(name, str):
        return None
    return Priority(name, summary, link, keywords, categories, colour)


def read_theme(t: Table, root: Path) -> ThemeSettings:
    d = ThemeSettings()
    templates = t.text("templates", None)
    template_path = None
    if isinstance(templates, str):
        template_path = local_path(t, "templates", templates, root, must_exist=True)
    colours = {}
    for key in (
        "primary_colour",
        "text_colour",
        "background_colour",
        "card_colour",
        "secondary_text_colour",
        "dark_link_colour",
    ):
        value = t.text(key, getattr(d, key))
        if isinstance(value, str) and not COLOUR.match(value):
            t.problem(key, f"{value!r} is not a #RRGGBB colour")
            value = getattr(d, key)
        colours[key] = value
    logo_url = t.text("logo_url", None)
    if logo_url is not None:
        http_url(t, "logo_url", logo_url)
    theme = ThemeSettings(
        templates=template_path,
        organisation=t.text("organisation", d.organisation),
        organisation_line=t.text("organisation_line", d.organisation_line),
        logo_url=logo_url,
        logo_alt=t.text("logo_alt", d.logo_alt),
        why_line=t.text("why_line", d.why_line),
        **colours,
    )
    t.finish()
    return theme


def read_delivery(t: Table, root: Path) -> DeliverySettings:
    d = DeliverySettings()
    transport = cast(Transport, t.choice("transport", ("outbox", "smtp"), d.transport))
    outbox = t.text("outbox", str(d.outbox))
    dkim_key = t.text("dkim_key", None)
    dkim_path = None
    if isinstance(dkim_key, str):
        dkim_path = local_path(t, "dkim_key", dkim_key, root, must_exist=True, absolute_anywhere=True)
    selector = t.text("dkim_selector", None, header=True)
    domain = t.text("dkim_domain", None, header=True)
    bounce_address = t.text("bounce_address", None, header=True)
    if isinstance(bounce_address, str):
        checked(t, "bounce_address", bounce_address, address_problem)
    verp = t.boolean("verp", False)
    if verp is True and bounce_address is None:
        t.problem("verp", "needs [delivery] bounce_address (verp sends from bounces+<id>@its domain)")
    if (dkim_key is None) != (selector is None):
        t.problem("dkim_selector", "dkim_key and dkim_selector must be set together")
    delivery = DeliverySettings(
        transport=transport,
        from_address=t.text("from_address", d.from_address, header=True),
        from_name=t.text("from_name", d.from_name, header=True),
        reply_to=t.text("reply_to", None, header=True),
        list_id=t.text("list_id", d.list_id, header=True),
        unsubscribe_mailto=t.text("unsubscribe_mailto", None, header=True),
        outbox=(root / outbox) if isinstance(outbox, str) else root / d.outbox,
        dkim_key=dkim_path,
        dkim_selector=selector,
        dkim_domain=domain,
        fallback_name=t.text("fallback_name", d.fallback_name),
        bounce_address=bounce_address if isinstance(bounce_address, str) else None,
        verp=verp is True,
        batch_size=t.integer("batch_size", d.batch_size, minimum=1, maximum=100_000),
    )
    t.finish()
    return delivery


def read_smtp(t: Table, root: Path) -> SmtpSettings:
    d = SmtpSettings()
    ca_file = t.text("ca_file", None)
    ca_path = None
    if isinstance(ca_file, str):
        ca_path = local_path(t, "ca_file", ca_file, root, must_exist=True, absolute_anywhere=True)
    smtp = SmtpSettings(
        host=t.text("host", d.host, header=True),
        port=t.integer("port", d.port, minimum=1, maximum=65_535),
        security=cast(Security, t.choice("security", ("none", "starttls", "tls"), d.security)),
        username=t.text("username", None, header=True),
        password_env=t.text("password_env", None),
        pool_size=t.integer("pool_size", d.pool_size, minimum=1, maximum=64),
        rate_per_second=t.number(
            "rate_per_second", d.rate_per_second, minimum=0.01, maximum=MAX_RATE_PER_SECOND
        ),
        timeout=t.number("timeout", d.timeout, minimum=1.0, maximum=3600.0),
        data_timeout=t.number("data_timeout", d.data_timeout, maximum=86_400.0),
        retries=t.integer("retries", d.retries, minimum=0, maximum=10),
        retry_delay=t.number("retry_delay", d.retry_delay, maximum=600.0),
        ca_file=ca_path,
    )
    if smtp.username and not smtp.password_env:
        t.problem("password_env", "username is set, so name the environment variable holding the password")
    t.finish()
    return smtp


def read_fetch(f: Table) -> FetchSettings:
    fd = FetchSettings()
    fetch = FetchSettings(
        concurrency=f.integer("concurrency", fd.concurrency, minimum=1, maximum=256),
        timeout=f.number("timeout", fd.timeout, maximum=MAX_FETCH_TIMEOUT),
        retries=f.integer("retries", fd.retries, minimum=0, maximum=10),
        max_bytes=f.integer("max_bytes", fd.max_bytes, minimum=1024, maximum=1_000_000_000),
        user_agent=f.text("user_agent", fd.user_agent, header=True),
        enrich_max=f.integer("enrich_max", fd.enrich_max, minimum=0, maximum=10_000),
    )
    f.finish()
    return fetch


def read_subscribers(t: Table) -> SubscriberSettings:
    settings = SubscriberSettings(allow_special_domains=t.boolean("allow_special_domains", False))
    t.finish()
    return settings


def read_subscribe(t: Table) -> SubscribeSettings:
    """`[subscribe]`: sign-up on `digest serve`; enabled, it needs the consent wording and privacy page."""
    d = SubscribeSettings()
    enabled = bool(t.boolean("enabled", d.enabled))
    consent = t.text("consent_text", d.consent_text)
    consent = " ".join(consent.split()) if isinstance(consent, str) else d.consent_text
    if enabled and not consent:
        t.problem("consent_text", "must say what the reader agrees to when [subscribe] enabled = true")
    privacy = t.text("privacy_url", None)
    if isinstance(privacy, str) and not http_url(t, "privacy_url", privacy):
        privacy = None
    if enabled and privacy is None and "privacy_url" not in t.data:
        t.problem("privacy_url", "is needed when [subscribe] enabled = true: the page of your privacy notice")
    record_ip = t.choice("record_ip", ("none", "truncated"), d.record_ip)
    settings = SubscribeSettings(
        enabled=enabled,
        consent_text=consent,
        privacy_url=privacy,
        confirm_within_hours=t.integer(
            "confirm_within_hours", d.confirm_within_hours, minimum=1, maximum=720
        ),
        pending_keep_days=t.integer("pending_keep_days", d.pending_keep_days, minimum=1, maximum=365),
        per_ip_per_hour=t.integer("per_ip_per_hour", d.per_ip_per_hour, minimum=1, maximum=10_000),
        record_ip="truncated" if record_ip == "truncated" else "none",
    )
    t.finish()
    return settings
