"""Parent of the modules UCS imports plugin files as (``ucs.plugins.files.<name>``).

Nothing lives here: :mod:`ucs.plugins.importer` puts each plugin file's module
in ``sys.modules`` under this package's name, so that plugin files never
shadow another module.
"""
