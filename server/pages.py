"""The pages people use: customer, staff console and display board (see issue 3)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
