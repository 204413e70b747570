// PIFA label embeddings (Positive Instance Feature Aggregation).
#pragma once
#include "core/common/sparse.h"

namespace xmc {

// Row l is the L2-normalised sum, over the documents i with Y[i, l] != 0, of
// Y[i, l] * X_i / ||X_i||: normalize(Y^T @ normalize(X)). Labels without
// documents get an empty row. Columns are sorted, exact zeros dropped.
// X: docs x features, Y: docs x labels. Each label is computed independently,
// so the result does not depend on the thread count.
LargeCsr pifa_embeddings(const CsrView& x, const CsrView& y, int threads);

}  // namespace xmc
