"""The ``shieldbench`` command: argument parsing (``main``), the subcommands (``commands``) and
progress display (``progress``). The only package that prints."""
