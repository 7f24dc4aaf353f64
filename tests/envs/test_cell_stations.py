"""The cell builds the stations a site has; a task names the kinds it needs."""

from __future__ import annotations

import pytest

from envs.cells.cell import Cell
from envs.conveyor_sort import ConveyorSortEnv
from envs.errors import MissingStationError
from envs.sites import load_site
from envs.touch_part import TouchPartEnv


@pytest.mark.parametrize("kind", ["conveyor", "bin"])
@pytest.mark.parametrize("make", [ConveyorSortEnv, TouchPartEnv], ids=lambda m: m.__name__)
def test_a_task_names_the_station_kind_the_bundle_lacks(make: type, kind: str) -> None:
    site = load_site("kr-changwon")
    stations = tuple(s for s in site.stations if s.kind != kind)
    without = site.model_copy(update={"stations": stations})
    with pytest.raises(MissingStationError, match=f"no {kind} station"):
        make(site=without)


def test_check_stations_accepts_what_the_site_has() -> None:
    site = load_site("us-austin")
    Cell.check_stations(site, ("conveyor", "bin", "robot"))
    with pytest.raises(MissingStationError, match="task touch-part"):
        Cell.check_stations(site.model_copy(update={"stations": ()}), ("conveyor",), "touch-part")
