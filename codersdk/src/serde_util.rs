//! Small serde helpers for Go-compatible presence rules.

use serde::{Deserialize, Deserializer};

/// Reads `null` as the type's default. Go writes a nil slice or map as `null`; we promise
/// our own output never does, and tolerate it on input.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
