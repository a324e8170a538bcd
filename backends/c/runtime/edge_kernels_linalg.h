/* edge-opt runtime: linalg kernels (to be written). */
#ifndef EDGE_KERNELS_LINALG_H
#define EDGE_KERNELS_LINALG_H
#endif
