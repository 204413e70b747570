"""Label trees: the shared ``LabelTree`` structure and its builders."""
from xmc.tree.label_tree import LabelTree

__all__ = ["LabelTree"]
