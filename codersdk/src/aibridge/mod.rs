//! The AI Gateway's wire types (`/api/v2/aibridge/…`): provider instances.

mod instances;

pub use instances::*;
