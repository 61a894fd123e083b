"""What the topic-variant tests share: three priorities and three items (one for each of two priorities
and one for none), so an issue has two variants with entries and one ("Work Well") with none."""

from __future__ import annotations

from datetime import UTC, datetime

PRIORITIES = """
[[priorities]]
name = "Start Well"
keywords = ["midwives"]

[[priorities]]
name = "Age Well"
keywords = ["care home"]

[[priorities]]
name = "Work Well"
keywords = ["payroll"]
"""
ITEMS = [
    ("Midwives celebrated at the L&D", datetime(2025, 5, 5, 9, tzinfo=UTC)),
    ("New care home opens in Ampthill", datetime(2025, 5, 6, 9, tzinfo=UTC)),
    ("Roadworks on the A6 this summer", datetime(2025, 5, 7, 9, tzinfo=UTC)),
]
