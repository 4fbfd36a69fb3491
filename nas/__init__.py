"""latbench's neural-architecture search: spaces, Sobol screening, LA-MCTS-guided BO, training.

Submodules are imported on demand: `nas.space` needs only numpy; the search pulls in torch,
scikit-learn and BoTorch when it runs.
"""
