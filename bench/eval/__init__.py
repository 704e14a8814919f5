"""The scoring engine: protocols (``protocol``), the runner and its stages (``runner``,
``adaptive``), the adversarial-example cache (``cache``), metrics from per-image records
(``metrics``), the results store (``results``), jobs and merging (``jobs``, ``merge``, ``slurm``),
sanity flags (``sanity``), re-run comparison (``reproduce``) and exported examples (``export``)."""
