"""The ``linux`` backend: labs in network namespaces and plans realised with ip, nft and tc.

The only package that runs those tools or uses pyroute2. Import :class:`LinuxBackend` from
:mod:`netscaffold.backends.linux.backend` (kept out of this module so that importing the lab helpers does
not load pyroute2).
"""
