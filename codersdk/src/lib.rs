//! codersdk (work in progress)
mod macros;
mod decimal;
mod error;
mod message;
mod model;
mod raw;
mod secret;
mod serde_util;
mod time;
pub use error::*;
pub use message::*;
pub use model::*;
pub use raw::*;
pub use secret::*;
pub use time::*;
pub use decimal::{parse_decimal, format_decimal, DecimalError, MAX_DECIMAL_DIGITS, MAX_DECIMAL_TEXT_LEN};
