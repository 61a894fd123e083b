"""The benchmarks' projects are valid configurations: `make bench` must not fail on a value the config
schema refuses (bench_send once wrote `rate_per_second = 100000`, above the maximum of 10000)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from digest.config import load_config
from digest.config.sections import MAX_RATE_PER_SECOND

REPO = Path(__file__).resolve().parent.parent


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_send_project_builds_and_imports_with_a_valid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_send = _bench("bench_send")
    monkeypatch.setattr(bench_send, "SUBSCRIBERS", 3)
    bench_send.make_project(tmp_path, 2525)  # raises when `digest build` or the import fails
    config = load_config(tmp_path / "config.toml")
    assert config.smtp.rate_per_second == MAX_RATE_PER_SECOND
    assert config.smtp.port == 2525
    assert (tmp_path / "out").is_dir()
