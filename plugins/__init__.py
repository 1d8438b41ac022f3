"""Built-in plugins of cmi-harness. The folder ``plugins/`` installs as the package ``harness_plugins``.

Why two names: the top-level ``plugins/`` folder is part of the repository layout users asked
for, but an installed top-level package named ``plugins`` would collide in site-packages with
any other distribution that ships one. So pyproject.toml maps the folder to the package
``harness_plugins`` (``[tool.setuptools] package-dir``); code outside the folder imports it by
that name (``harness_plugins.models``), modules inside it import each other relatively, and an
editable install resolves the name to this folder.

Each module below registers through the ``harness`` entry-point group in pyproject.toml,
exactly as a third-party plugin package does (the hooks: ``harness.hookspecs``):

* ``objectives_ce``, ``objectives_cmi``, ``objectives_kd``: the training objectives;
* ``models``: the model names (``bert-base``, ``distilbert-base``, ``minilm-l6``, ``tiny``);
* ``suite_glue``, ``suite_smoke``: the task suites;
* ``reporters``, ``trackers``: report formats and experiment trackers.

``words`` is no plugin: the word lists that the smoke suite and the tiny model's tokenizer share.
"""
