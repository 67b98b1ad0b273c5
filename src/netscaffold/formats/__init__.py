"""File formats: topology importers and exporters, generators, summaries, traffic-matrix readers.

Topologies: :func:`netscaffold.formats.loader.load_topology` (GraphML, SNDlib XML, NetJSON, Rocketfuel,
links CSV) and :func:`~netscaffold.formats.loader.save_topology` (NetJSON, GraphML); generators in
:mod:`netscaffold.formats.generators`; traffic matrices in :mod:`netscaffold.formats.traffic`.
"""
