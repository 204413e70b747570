"""Label trees: the shared ``LabelTree`` structure and its builders."""
from xmc.tree.build import (BinaryPartition, binary_partition, build_label_tree, cluster_labels, compress, kept_levels,
                            pifa_embeddings, pifa_partition, validate_params)
from xmc.tree.label_tree import LabelTree
from xmc.tree.params import TreeParams

__all__ = [
    "BinaryPartition",
    "LabelTree",
    "TreeParams",
    "binary_partition",
    "build_label_tree",
    "cluster_labels",
    "compress",
    "kept_levels",
    "pifa_embeddings",
    "pifa_partition",
    "validate_params",
]
