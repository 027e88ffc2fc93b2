"""The build pipeline: one path for every territory, a small one being a single partition.

Read in this order:

- :mod:`~observatoire.pipeline.build` — the sequence (:func:`build`);
- :mod:`~observatoire.pipeline.staging` — the parcel files split by commune;
- :mod:`~observatoire.pipeline.batiments` — the buildings streamed by tiles;
- :mod:`~observatoire.pipeline.contiguity` — the parcel graph across communes;
- :mod:`~observatoire.pipeline.partitions` — the analysis of groups of communes;
- :mod:`~observatoire.pipeline.spill` — what waits for every partition;
- :mod:`~observatoire.pipeline.publication` — the table of outputs.

The analysis itself (indicators, scores, land units, candidate sites) is
:mod:`observatoire.analysis`; the readers are :mod:`observatoire.readers`; the
files made from the layers, :mod:`observatoire.publish`.
"""

from observatoire.pipeline.build import BuildResult, build

__all__ = ["BuildResult", "build"]
