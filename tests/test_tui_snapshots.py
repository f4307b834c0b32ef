"""Snapshots of every screen: seeded data, frozen clock, fixed size and path (the same scenes as
`python -m devtools.screenshots`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.screenshots import SCENES, SIZE, first_load, seeded_app, settle


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_scene(scene: str, snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    app = seeded_app(str(tmp_path / "q.db"))
    assert snap_compare(app, terminal_size=SIZE, run_before=SCENES[scene])


@pytest.mark.parametrize(
    "keys", [("6",), ("question_mark",), ("5",)], ids=["workers", "help", "cancelled"]
)
def test_other_screens(keys: tuple[str, ...], snap_compare: Callable[..., bool],
                       tmp_path: Path) -> None:  # fmt: skip
    app = seeded_app(str(tmp_path / "q.db"))

    async def run_before(pilot: object) -> None:
        await first_load(pilot)  # type: ignore[arg-type]
        await pilot.press(*keys)  # type: ignore[attr-defined]
        await settle(pilot) if keys != ("question_mark",) else None  # type: ignore[arg-type]

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_read_only_main(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    app = seeded_app(str(tmp_path / "q.db"), read_only=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=first_load)
