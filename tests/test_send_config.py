"""The delivery settings added for sending: smtp.retry_delay, smtp.ca_file, delivery.fallback_name."""

from __future__ import annotations

from pathlib import Path

import pytest
from send_support import write_config

from digest.config import SmtpSettings, load_config
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_defaults_and_the_shipped_config() -> None:
    config = load_config(REPO / "config.toml")
    assert config.smtp.retry_delay == SmtpSettings().retry_delay == 1.0
    assert config.smtp.ca_file is None
    assert config.delivery.fallback_name == "there"
    text = (REPO / "config.toml").read_text()
    assert "retry_delay = 1" in text and "# ca_file = " in text and 'fallback_name = "there"' in text


def test_values_are_read_and_paths_resolved(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = write_config(
        tmp_path, 'fallback_name = "colleague"', smtp='retry_delay = 0.5\nca_file = "ca.pem"'
    )
    assert config.smtp.retry_delay == 0.5
    assert config.smtp.ca_file == (tmp_path / "ca.pem").resolve()
    assert config.delivery.fallback_name == "colleague"


def test_bad_values_are_reported_with_their_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, "fallback_name = 3", smtp='retry_delay = -1\nca_file = "missing.pem"')
    problems = "\n".join(caught.value.problems)
    assert "smtp.retry_delay: must be greater than 0, not -1" in problems
    assert "smtp.ca_file: file missing.pem does not exist" in problems
    assert "delivery.fallback_name: must be a string, not an integer" in problems
