"""One module per seed claim.  Each has ``CLAIM``, ``Config``, ``run(cfg) -> results``
and ``plot(results, out_dir) -> [png paths]``; see :mod:`reslab.experiments.base`."""

EXPERIMENTS = ["vanishing", "exploding", "shattered", "degradation"]
