/* edge-opt runtime: norm kernels. */
#include "edge_runtime.h"
