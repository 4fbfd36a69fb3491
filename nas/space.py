"""Moved to `latbench.space` (the core needs the space; the search only uses it). This alias
keeps `from nas.space import load_space` working for one release."""

from latbench.space import SearchSpace, load_space, space_from_obj  # noqa: F401
