/* Multi-channel EGNN per-edge kernel (Gram radial, per-channel coordinate weights): see
   graphdyn/ops/egnn_edges.py. Written over `real` and F(name) like every unit (native/__init__.py). */
