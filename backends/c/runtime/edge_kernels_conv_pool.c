/* edge-opt runtime: conv_pool kernels. */
#include "edge_runtime.h"
