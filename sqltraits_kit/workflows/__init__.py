"""Workflows, the top stage: what the app, notebooks and the CLI run, composed from the stages
below — the Preview (``preview``), the scheduled pipeline (``pipeline``) and read-back
(``readback``)."""
