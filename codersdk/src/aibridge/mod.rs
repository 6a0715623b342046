//! The AI Gateway's (AI Bridge's) wire types (`/api/v2/aibridge/…`): provider instances,
//! recorded interceptions and the sessions grouping them.

mod instances;
mod interceptions;

pub use instances::*;
pub use interceptions::*;
