/* edge-opt runtime: norm kernels (to be written). */
#ifndef EDGE_KERNELS_NORM_H
#define EDGE_KERNELS_NORM_H
#endif
