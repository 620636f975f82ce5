"""``reslab NAME`` for every experiment module in :mod:`reslab.experiments` (vanishing,
exploding, shattered, degradation, looks-linear, ...), each built by
:func:`reslab.commands._experiment.add_experiment_command` from what the module declares."""

from reslab.commands._experiment import add_experiment_commands as add_parser  # noqa: F401
