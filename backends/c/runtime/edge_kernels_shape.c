/* edge-opt runtime: shape kernels. */
#include "edge_runtime.h"
