"""Neural-network operations with a pure-PyTorch reference and fused CPU/CUDA kernels."""
from xmc.ops.dynamic_graph import dynamic_graph_propagate
from xmc.ops.gcn import SparseGraph, gcn_propagate
from xmc.ops.label_attention import BACKENDS, label_attention, resolve_backend

__all__ = ["BACKENDS", "label_attention", "resolve_backend", "SparseGraph", "gcn_propagate", "dynamic_graph_propagate"]
