"""Reactive setup-cost profiles: what a flow pays when its path is not scaffolded.

The delay a new flow waits before its first packet moves when nothing is pre-configured:
``controller_rtt_s + path_computation_s + per_hop_install_s * hops + firewall_update_s * firewalls
(+ admission_s when its QoS needs a reservation or a circuit)``. Every parameter is configurable; the three
named defaults come from published or locally measured figures (sources beside each profile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from netscaffold.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SetupCostProfile:
    """Components of the reactive setup delay, in seconds."""

    name: str
    controller_rtt_s: float
    path_computation_s: float
    per_hop_install_s: float
    firewall_update_s: float
    admission_s: float

    def __post_init__(self) -> None:
        for spec in fields(self):
            if spec.name == "name":
                continue
            value = getattr(self, spec.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"must be a finite number >= 0, got {value!r}",
                    element=f"setup-cost profile {self.name!r}",
                    field=spec.name,
                )

    def setup_delay_s(self, hops: int, firewalls: int, needs_admission: bool) -> float:
        """The reactive delay for a path of ``hops`` links crossing ``firewalls`` firewall nodes."""
        return (
            self.controller_rtt_s
            + self.path_computation_s
            + self.per_hop_install_s * hops
            + self.firewall_update_s * firewalls
            + (self.admission_s if needs_admission else 0.0)
        )

    def as_array(self) -> tuple[float, float, float, float, float]:
        return (
            self.controller_rtt_s,
            self.path_computation_s,
            self.per_hop_install_s,
            self.firewall_update_s,
            self.admission_s,
        )


# ONOS performance evaluation (Blackbird release, ON.Lab 2015): intent installation 15.5 ms on one
# controller node (43.5 ms on a three-node cluster). Split so that a 6-link fat-tree path costs
# 1 + 2.5 + 6 x 2 = 15.5 ms: a LAN controller round trip, path computation, then one flow-mod per hop.
SDN_LAN = SetupCostProfile(
    name="sdn-lan",
    controller_rtt_s=1.0e-3,
    path_computation_s=2.5e-3,
    per_hop_install_s=2.0e-3,
    firewall_update_s=2.0e-3,
    admission_s=2.0e-3,
)

# Measured on this kind of machine (ARCHITECTURE.md, "Figures to start from"): a 3-hop path programmed
# in-process over netlink, 0.59 ms median = 0.05 + 0.09 + 3 x 0.15 ms. Firewall and admission from the
# measured nft (~65k rules/s, plus per-transaction overhead) and tc (~3.3k HTB classes/s: 0.3 ms) rates.
LINUX_LOCAL = SetupCostProfile(
    name="linux-local",
    controller_rtt_s=0.05e-3,
    path_computation_s=0.09e-3,
    per_hop_install_s=0.15e-3,
    firewall_update_s=0.2e-3,
    admission_s=0.3e-3,
)

# Cloud / Kubernetes policy propagation is seconds: AWS VPC network policy agent about 1-2 s; Cilium about
# 8 s to reach nodes under churn (cilium/cilium issue 16302); Calico reports of 86-120 s. The default sits
# at the AWS end (a 6-link path without firewalls: 0.2 + 1.0 + 6 x 0.05 = 1.5 s); a permit adds 2 s.
CLOUD_POLICY = SetupCostProfile(
    name="cloud-policy",
    controller_rtt_s=0.2,
    path_computation_s=1.0,
    per_hop_install_s=0.05,
    firewall_update_s=2.0,
    admission_s=0.5,
)

PROFILES: dict[str, SetupCostProfile] = {p.name: p for p in (SDN_LAN, LINUX_LOCAL, CLOUD_POLICY)}


def resolve_profile(profile: str | SetupCostProfile) -> SetupCostProfile:
    """A profile object from a name or an object; an unknown name raises :class:`ConfigError`."""
    if isinstance(profile, SetupCostProfile):
        return profile
    found = PROFILES.get(profile)
    if found is None:
        raise ConfigError(
            f"unknown setup-cost profile {profile!r}; known: {', '.join(sorted(PROFILES))}",
            field="profile",
        )
    return found
