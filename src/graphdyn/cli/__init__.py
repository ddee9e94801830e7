"""The ``graphdyn`` command line (Typer): one module per command group."""
