"""What every part of the package runs on, below the modes, codecs and engine: argument checks,
Horovod's parameter names, the package's logger, progress lines, the failure policy (non-finite
gradients, stopping every rank), bytes a collective sends, Horovod's knobs of a running job, the
Horovod session the state belongs to, every rank at the same point, the same setup on every
rank."""
