//! Exact decimal costing (in progress).
