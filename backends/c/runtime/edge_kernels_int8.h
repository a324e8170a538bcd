/* edge-opt runtime: int8 kernels (to be written). */
#ifndef EDGE_KERNELS_INT8_H
#define EDGE_KERNELS_INT8_H
#endif
