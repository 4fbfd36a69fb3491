"""Search spaces: stage-wise network families as data, their integer encoding, Sobol sampling,
and the index of every block key a space can reach (pure numpy: the predictor builds on it).

    space = load_space("gpunet")              # or "tiny", or a space file
    X = sample(space, 1024, seed=0)           # [1024, 41] encoded networks
    arch = space.decode(X[0])                 # latbench.arch.Arch
"""

from latbench.space.index import SpaceIndex, index_for
from latbench.space.sampling import MAX_SAMPLE, sample, sample_archs, sobol_indices
from latbench.space.space import Dim, Field, SearchSpace, SpaceStage, bundled_spaces, load_space, space_from_obj

__all__ = ["MAX_SAMPLE", "Dim", "Field", "SearchSpace", "SpaceIndex", "SpaceStage", "bundled_spaces", "index_for",
           "load_space",
           "sample", "sample_archs", "sobol_indices", "space_from_obj"]
