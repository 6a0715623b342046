//! The AI Gateway's (AI Bridge's) wire types: recorded interceptions and the sessions
//! grouping them (`GET /api/v2/aibridge/interceptions`, `GET /api/v2/aibridge/sessions`).

mod interceptions;

pub use interceptions::*;
