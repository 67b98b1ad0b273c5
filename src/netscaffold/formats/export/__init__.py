"""Exporters of a primed config: nftables JSON, ``ip -batch``, ``tc -batch`` (per node, through the same
renderers and kernel-object mapping the Linux backend programs the kernel with) and Kubernetes
NetworkPolicy YAML for pod-level pairs."""

from netscaffold.formats.export.k8s import network_policies, policies_yaml, validate_policy
from netscaffold.formats.export.kernel import NodeExport, export_nodes

__all__ = ["NodeExport", "export_nodes", "network_policies", "policies_yaml", "validate_policy"]
