/* edge-opt runtime: train kernels. */
#include "edge_runtime.h"
