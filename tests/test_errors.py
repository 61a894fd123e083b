"""Every DigestError subclass has a distinct, documented exit code and keeps its hint."""

from __future__ import annotations

from pathlib import Path

import digest.errors as errors_module
from digest.errors import DigestError

README = Path(__file__).resolve().parent.parent / "README.md"


def _subclasses(cls: type[DigestError]) -> list[type[DigestError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def test_every_error_has_an_exit_code_listed_in_the_readme() -> None:
    readme = README.read_text()
    classes = _subclasses(DigestError)
    assert len(classes) >= 8
    for cls in classes:
        error = cls("something broke", hint="do this")
        assert error.exit_code > 1, cls
        assert str(error) == "something broke"
        assert error.hint == "do this"
        assert f"| {cls.exit_code} " in readme, f"exit code {cls.exit_code} ({cls.__name__}) not in README"
        assert cls.__doc__, cls
    assert errors_module.__doc__
