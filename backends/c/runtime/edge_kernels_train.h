/* edge-opt runtime: train kernels (to be written). */
#ifndef EDGE_KERNELS_TRAIN_H
#define EDGE_KERNELS_TRAIN_H
#endif
