/* edge-opt runtime: linalg kernels. */
#include "edge_runtime.h"
