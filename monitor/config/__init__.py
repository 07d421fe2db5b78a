"""The configuration concern: ``config.toml`` in, a checked
:class:`~monitor.config.types.Config` out.

- :mod:`~monitor.config.types` -- the frozen dataclasses the rest of the daemon reads;
- :mod:`~monitor.config.check` -- the value checkers that name the key, the rule and the value;
- :mod:`~monitor.config.endpoints`, :mod:`~monitor.config.receivers`,
  :mod:`~monitor.config.routes` -- one parser per section family;
- :mod:`~monitor.config.load` -- ``load_config`` / ``parse_config`` / ``check_config``.

The package imports nothing itself, so ``monitor.config.types`` can be imported by the
modules that :mod:`~monitor.config.load` depends on.
"""
