/* edge-opt runtime: int8 kernels. */
#include "edge_runtime.h"
