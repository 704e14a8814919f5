"""Code we did not write: a submitted defense file is loaded (``submit``), run in a confined
worker process (``sandbox``, ``sandbox_worker``, ``isolation``) and talked to over a plain wire
format (``wire``)."""
