/* edge-opt runtime: conv_pool kernels (to be written). */
#ifndef EDGE_KERNELS_CONV_POOL_H
#define EDGE_KERNELS_CONV_POOL_H
#endif
