"""`digest check` catches what would crash later: every number has a sane range, every header-bound string
refuses control characters; a config that `check` passes never makes `build` or `send` exit 1."""

from __future__ import annotations

import math
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from digest.cli import main
from digest.config import parse_config
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2025-05-09T17:00:00+01:00"
SHIPPED: dict[str, Any] = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))


def _problems(tmp_path: Path, table: str, key: str, value: object) -> tuple[str, ...]:
    data = {**SHIPPED, table: {**SHIPPED.get(table, {}), key: value}}
    shutil.copytree(REPO / "feeds", tmp_path / "feeds", dirs_exist_ok=True)
    try:
        parse_config(data, tmp_path / "config.toml")
    except ConfigError as e:
        return e.problems
    return ()


@pytest.mark.parametrize(
    ("table", "key", "value", "allowed"),
    [
        ("digest", "lookback_days", 100_000_000_000, "(allowed: 1 to 3650)"),
        ("digest", "max_window_days", 0, "(allowed: 1 to 3650)"),
        ("smtp", "rate_per_second", 1e-300, "(allowed: at least 0.01, at most 10000)"),
        ("smtp", "timeout", 1e308, "(allowed: at least 1, at most 3600)"),
        ("smtp", "timeout", math.nan, "(allowed: at least 1, at most 3600)"),
        ("smtp", "pool_size", 100_000, "(allowed: 1 to 64)"),
        ("smtp", "port", 70_000, "(allowed: 1 to 65535)"),
        ("smtp", "retries", 1000, "(allowed: 0 to 10)"),
        ("smtp", "retry_delay", math.inf, "(allowed: greater than 0, at most 600)"),
        ("fetch", "timeout", 1e308, "(allowed: greater than 0, at most 600)"),
        ("fetch", "concurrency", 1_000_000, "(allowed: 1 to 256)"),
        ("fetch", "max_bytes", 10**15, "(allowed: 1024 to 1000000000)"),
        ("state", "keep_days", 10**12, "(allowed: 1 to 36500)"),
        ("schedule", "catch_up_hours", 1e300, "(allowed: at least 0, at most 8760)"),
        ("schedule", "retry_minutes", 10**9, "(allowed: 1 to 10080)"),
        ("highlights", "max", 10**9, "(allowed: 0 to 100)"),
        ("digest", "section_cap", 10**9, "(allowed: 1 to 1000)"),
        ("digest", "excerpt_chars", 10**9, "(allowed: 40 to 10000)"),
        ("status", "failing_after", 10**9, "(allowed: 1 to 1000)"),
    ],
)
def test_check_refuses_a_number_out_of_its_range_naming_the_key_and_the_range(
    tmp_path: Path, table: str, key: str, value: object, allowed: str
) -> None:
    problems = _problems(tmp_path, table, key, value)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{table}.{key}: must be "), problems
    assert problems[0].endswith(allowed), problems


@pytest.mark.parametrize("value", ["News\r\nBcc: x@example.org", "News\nmore", "News\u2028more", "a\x00b"])
@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("digest", "title"),
        ("delivery", "from_name"),
        ("delivery", "from_address"),
        ("delivery", "list_id"),
        ("delivery", "reply_to"),
        ("web", "base_url"),
        ("fetch", "user_agent"),
    ],
)
def test_check_refuses_a_control_character_in_a_header_bound_string(
    tmp_path: Path, table: str, key: str, value: str
) -> None:
    problems = _problems(tmp_path, table, key, value)
    assert len(problems) == 1 and problems[0].startswith(f"{table}.{key}: contains the control character")


# ---------------------------------------------------------------------------------------- mutation


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_toml_char(ch) for ch in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # a sub-table such as [sources.select], written inline
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _toml_char(ch: str) -> str:
    if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\u{ord(ch):04X}" if ch not in '"\\' else "\\" + ch
    return ch


def dump_toml(data: dict[str, Any]) -> str:
    """A TOML document of a config-shaped dict (tables, arrays of tables, scalars and lists)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    for name, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
        elif isinstance(value, list):
            lines.insert(0, f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _leaves(data: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    """(table, index in an array of tables or None, key) of every setting in the shipped config."""
    out: list[tuple[str, int | None, str]] = []
    for name, value in data.items():
        if isinstance(value, dict):
            out += [(name, None, k) for k in value]
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            out += [(name, i, k) for i, item in enumerate(value) for k in item]
    # the outbox transport is kept: the test sends nothing over the network
    return [leaf for leaf in out if leaf != ("delivery", None, "transport")]


LEAVES = _leaves(SHIPPED)
EXTRA = [("digest", None, "max_window_days"), ("smtp", None, "pool_size"), ("state", None, "keep_days")]
values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from([0, 1, 10**11, 10**18, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 1e308, 0.0, -0.0]),
    st.text(max_size=12),
    st.sampled_from(["", "x\r\ny", "\u2028", "\x00", "/", "..", "a.xml"]),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)


def _original(leaf: tuple[str, int | None, str]) -> object:
    table, index, key = leaf
    container = SHIPPED.get(table, {}) if index is None else SHIPPED[table][index]
    return container.get(key)


def _typed_values(leaf: tuple[str, int | None, str]) -> st.SearchStrategy[object]:
    """Mostly values of the setting's own type (so `check` often passes and build/send really run)."""
    original = _original(leaf)
    if isinstance(original, bool):
        same: st.SearchStrategy[object] = st.booleans()
    elif isinstance(original, int):
        same = st.integers(min_value=-1, max_value=2 * original + 10)
    elif isinstance(original, float):
        same = st.one_of(st.floats(min_value=-1.0, max_value=2 * original + 10), st.integers(0, 100))
    elif isinstance(original, str):
        same = st.one_of(
            st.text(st.characters(codec="utf-8"), max_size=20),
            st.just(original + "\r\nX: y"),
            st.just(original + "\u2028"),
            st.just(original * 3),
        )
    elif isinstance(original, list):
        same = st.lists(st.text(max_size=8), max_size=4)
    else:  # a key the shipped config leaves at its default: an integer setting
        same = st.integers(min_value=-5, max_value=10**13)
    return st.one_of(same, same, same, values)


def _run(argv: list[str]) -> int:
    return main(argv)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    changes=st.lists(
        st.sampled_from(LEAVES + EXTRA).flatmap(lambda leaf: st.tuples(st.just(leaf), _typed_values(leaf))),
        min_size=1,
        max_size=2,
    )
)
@example(changes=[(("digest", None, "lookback_days"), 100_000_000_000)])
@example(changes=[(("digest", None, "title"), "Weekly\r\nBcc: all@example.org")])
@example(changes=[(("delivery", None, "from_name"), "BLMK\u2028news")])
@example(changes=[(("digest", None, "max_window_days"), 10**12)])
def test_whenever_check_passes_build_and_send_dry_run_never_exit_1(
    changes: list[tuple[tuple[str, int | None, str], object]], capsys: pytest.CaptureFixture[str]
) -> None:
    data: dict[str, Any] = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    for (table, index, key), value in changes:
        target = data.setdefault(table, {}) if index is None else data[table][index]
        target[key] = value
    with tempfile.TemporaryDirectory(prefix="digest-mutate-") as folder:
        site = Path(folder)
        shutil.copytree(REPO / "feeds", site / "feeds")
        (site / "config.toml").write_text(dump_toml(data), encoding="utf-8")
        config = ["--config", str(site / "config.toml")]
        checked = _run(["check", *config])
        event("check passed" if checked == 0 else "check failed")
        if checked != 0:
            assert checked == 2, capsys.readouterr().err
            return
        built = _run(["build", *config, "--offline", "--as-of", AS_OF])
        err = capsys.readouterr().err
        assert built != 1, err
        sent = _run(["send", *config, "--dry-run"])
        err = capsys.readouterr().err
        assert sent != 1, err
