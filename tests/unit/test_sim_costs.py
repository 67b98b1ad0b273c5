"""Reactive setup-cost profiles."""

from __future__ import annotations

import dataclasses
import math

import pytest

from netscaffold.backends.sim import PROFILES, SetupCostProfile
from netscaffold.backends.sim.costs import resolve_profile
from netscaffold.errors import ConfigError


def test_named_profiles_and_their_published_totals() -> None:
    assert set(PROFILES) == {"sdn-lan", "linux-local", "cloud-policy"}
    # ONOS: 15.5 ms intent installation on a 6-link path
    assert PROFILES["sdn-lan"].setup_delay_s(6, 0, False) == pytest.approx(15.5e-3)
    # measured here: 3-hop path over netlink, 0.59 ms median
    assert PROFILES["linux-local"].setup_delay_s(3, 0, False) == pytest.approx(0.59e-3)
    assert 1.0 <= PROFILES["cloud-policy"].setup_delay_s(6, 0, False) <= 2.0


def test_components_add_up() -> None:
    p = SetupCostProfile("x", 1.0, 2.0, 0.5, 3.0, 7.0)
    assert p.setup_delay_s(4, 2, True) == 1.0 + 2.0 + 4 * 0.5 + 2 * 3.0 + 7.0
    assert p.setup_delay_s(4, 2, False) == 1.0 + 2.0 + 4 * 0.5 + 2 * 3.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_parameter_is_named(bad: float) -> None:
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(PROFILES["sdn-lan"], per_hop_install_s=bad)
    assert err.value.location.field == "per_hop_install_s"


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="sdn-lan"):
        resolve_profile("sdn-wan")
