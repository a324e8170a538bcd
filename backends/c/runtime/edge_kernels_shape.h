/* edge-opt runtime: shape kernels (to be written). */
#ifndef EDGE_KERNELS_SHAPE_H
#define EDGE_KERNELS_SHAPE_H
#endif
