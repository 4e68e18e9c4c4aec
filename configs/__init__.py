"""lexi's config files, installed with the package as `lexi.configs` (setup.py), so that
`lexi train --config configs/standard.py:tiny` finds them from any directory: a path that
does not exist is looked up by its file name here (lexi.config.load_config)."""
