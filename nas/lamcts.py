"""Latent Action Monte Carlo Tree Search (LA-MCTS), implemented from the paper.

Wang, Fonseca, Tian, "Learning Search Space Partition for Black-box Optimization using Monte
Carlo Tree Search", NeurIPS 2020 (arXiv 2007.00708); LaNAS (arXiv 1906.06832).

The tree is rebuilt from scratch from the evaluated samples at every proposal:
1. a node holding more than `leaf_size` samples is split: k-means (k=2) on [x scaled to [0, 1],
   y standardised] finds a good and a bad cluster; an RBF SVM trained on x alone separates them
   and becomes the node's boundary (the children hold the samples the SVM assigns to each side);
2. a leaf is selected by walking from the root to the child of larger UCB,
   mean_y(child) + cp * sqrt(2 ln n(parent) / n(child));
3. candidates inside the leaf's region (classified to the chosen side by every SVM on the path)
   are handed to BO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Node:
    rows: np.ndarray  # indices into the samples
    mean: float
    svm: object = None  # fitted classifier: predicts 1 for the good side
    good: "Node | None" = None
    bad: "Node | None" = None

    @property
    def is_leaf(self) -> bool:
        return self.svm is None


def build_tree(X: np.ndarray, y: np.ndarray, leaf_size: int = 20, seed: int = 0, depth: int = 0,
               rows: np.ndarray | None = None, max_depth: int = 8) -> Node:
    """Partition samples X [n, d] (scaled to [0, 1]) with values y [n] (higher is better)."""
    rows = np.arange(len(y)) if rows is None else rows
    node = Node(rows, float(y[rows].mean()) if len(rows) else float("nan"))
    if len(rows) <= leaf_size or depth >= max_depth:
        return node
    split = _split(X[rows], y[rows], seed)
    if split is None:
        return node
    svm, side = split
    node.svm = svm
    node.good = build_tree(X, y, leaf_size, seed, depth + 1, rows[side], max_depth)
    node.bad = build_tree(X, y, leaf_size, seed, depth + 1, rows[~side], max_depth)
    return node


def _split(X: np.ndarray, y: np.ndarray, seed: int):
    """(svm, good-side mask) or None when the samples cannot be separated into two sides."""
    from sklearn.cluster import KMeans
    from sklearn.svm import SVC

    std = y.std()
    ys = (y - y.mean()) / std if std > 0 else np.zeros_like(y)
    # Standardised y has variance 1 while the d scaled inputs together have sum(var x_i): in 41
    # dimensions the clusters would follow x alone. Weighting y to the inputs' total variance lets
    # the split separate good from bad samples, which is what the partition is for.
    ys = ys * np.sqrt(max(X.var(axis=0).sum(), 1e-12))
    labels = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(np.column_stack([X, ys]))
    if len(np.unique(labels)) < 2:
        return None
    good_label = int(y[labels == 1].mean() > y[labels == 0].mean())
    target = (labels == good_label).astype(int)
    svm = SVC(kernel="rbf", gamma="scale", C=10.0, class_weight="balanced").fit(X, target)
    side = svm.predict(X).astype(bool)
    if side.all() or not side.any():  # the boundary does not separate anything
        return None
    return svm, side


def select_path(root: Node, cp: float) -> list[tuple[Node, bool]]:
    """Walk to a leaf by UCB; returns [(node, went_to_good_side)] for every split on the way."""
    path, node = [], root
    while not node.is_leaf:
        go_good = _ucb(node.good, len(node.rows), cp) >= _ucb(node.bad, len(node.rows), cp)
        path.append((node, go_good))
        node = node.good if go_good else node.bad
    return path


def _ucb(child: Node, n_parent: int, cp: float) -> float:
    return child.mean + cp * np.sqrt(2 * np.log(n_parent) / max(len(child.rows), 1))


def in_region(path: list[tuple[Node, bool]], candidates: np.ndarray) -> np.ndarray:
    """Mask of candidates [m, d] that every SVM on `path` puts on the chosen side."""
    mask = np.ones(len(candidates), bool)
    for node, good in path:
        if not mask.any():
            break
        pred = node.svm.predict(candidates[mask]).astype(bool)
        idx = np.nonzero(mask)[0]
        mask[idx] = pred if good else ~pred
    return mask


def leaf_candidates(path, candidates: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Indices of candidates in the selected leaf's region; when it holds fewer than `min_count`,
    the region of the deepest ancestor that holds enough (the whole set at worst)."""
    for depth in range(len(path), -1, -1):
        mask = in_region(path[:depth], candidates)
        if mask.sum() >= min_count:
            return np.nonzero(mask)[0]
    return np.arange(len(candidates))
