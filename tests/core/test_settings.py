"""Settings come from MAILROOM_* variables, and flags (overrides) win over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings


def test_ports_and_data_dir_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MAILROOM_SMTP_PORT, MAILROOM_HTTP_PORT and MAILROOM_DATA_DIR set the settings."""
    monkeypatch.setenv("MAILROOM_SMTP_PORT", "2525")
    monkeypatch.setenv("MAILROOM_HTTP_PORT", "8125")
    monkeypatch.setenv("MAILROOM_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    assert (settings.smtp_port, settings.http_port, settings.data_dir) == (2525, 8125, tmp_path)
    assert settings.activation_base_url == "http://127.0.0.1:8125"


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit override (a command-line flag) beats the variable."""
    monkeypatch.setenv("MAILROOM_SMTP_PORT", "2525")
    assert Settings.from_env(smtp_port=2626).smtp_port == 2626


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAILROOM_SMTP_PORT", "smtp"), ("MAILROOM_HTTP_PORT", "70000"),
     ("MAILROOM_DELIVERY", "carrier-pigeon")],
)
def test_bad_variables_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A malformed variable is an error that names the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


@pytest.mark.parametrize("url", ["not a url", "javascript:alert(1)", "ftp://x.example/",
                                 "http://", "http://a b.example/", "/activate"])
def test_a_base_url_that_is_no_http_url_is_refused(url: str) -> None:
    """Activation links are built from the base URL and mailed out: only http(s) will do."""
    with pytest.raises(ValueError, match="base URL"):
        Settings.from_env(base_url=url)


def test_a_good_base_url_is_kept() -> None:
    """An absolute https URL (with a path) is used as given, without the trailing slash."""
    settings = Settings.from_env(base_url=" https://signup.example/app/ ")
    assert settings.activation_base_url == "https://signup.example/app"
