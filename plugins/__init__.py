"""Built-in plugins of cmi-harness (installed as ``harness_plugins``).

Each module registers through the ``harness`` entry-point group in pyproject.toml,
exactly as a third-party plugin package does.
"""
