"""`digest check`: validate a configuration (and, with --email, a built email)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from digest.checks.email import check_email
from digest.cli.common import config_option, read_config, stderr, stdout
from digest.config import DigestSettings
from digest.config.links import insecure_links_error, review_links
from digest.errors import EmailCheckError, UsageError


@click.command()
@config_option
@click.option(
    "--email",
    "emails",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Also check a built email.html: size, lang, alt text, headings, link text, contrast, dark mode, "
    "no scripts or external CSS (repeatable). Exit code 4 when one fails.",
)
def check(config_path: Path, emails: tuple[Path, ...]) -> int:
    """Validate the configuration file and report every problem at once.

    With --email and no config file at the default place, only the emails are checked (their
    `<html lang>` against the default locale, en_GB); pass --config to use its [digest] locale.
    """
    source = click.get_current_context().get_parameter_source("config_path")
    locale = DigestSettings().locale
    if emails and source is ParameterSource.DEFAULT and not config_path.exists():
        stderr.print(
            f"note: no {config_path} here: checking the emails only, lang against {locale}"
            " (pass --config to use its [digest] locale)",
            markup=False,
        )
    else:
        config = read_config(config_path)
        locale = config.digest.locale
        review = review_links(config)
        for warning in review.warnings:
            stderr.print(f"warning: {warning}", markup=False)
        if review.problems:
            raise insecure_links_error(config, review)
        enabled = len(config.enabled_sources)
        stdout.print(
            f"{config.path}: ok ({enabled} source{'s' if enabled != 1 else ''} enabled, "
            f"{len(config.priorities)} priorities)",
            markup=False,
        )
    failed = []
    if emails:
        from digest.render import html_lang  # noqa: PLC0415 - jinja2 and babel only when checking an email
    for path in emails:
        try:
            html = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(
                f"{path}: no such file", hint="pass the email.html that `digest build` printed"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{path}: cannot read it as UTF-8 text: {e}") from e
        problems = check_email(html, lang=html_lang(locale))
        if not problems:
            stdout.print(f"{path}: ok ({len(html.encode('utf-8')) / 1024:.1f} KB)", markup=False)
            continue
        failed.append(path)
        stderr.print(f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}", markup=False)
        for problem in problems:
            stderr.print(f"  {problem}", markup=False)
    if failed:
        raise EmailCheckError(
            f"{len(failed)} email{'s' if len(failed) > 1 else ''} failed the checks: "
            + ", ".join(str(p) for p in failed),
            hint="fix the template or theme colours named above, then run `digest build` again",
        )
    return 0


def register(group: click.Group) -> None:
    group.add_command(check)
