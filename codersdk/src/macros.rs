//! The `string_enum!` macro: forward-compatible string enums.
//!
//! Every wire enum must survive a newer server: an unknown string is kept
//! in an `Unknown(String)` variant instead of failing the whole object. serde's derive
//! cannot express "known strings or anything else" without an untagged fallback that
//! loses error quality, so one macro writes the enum, its string conversions, serde,
//! TypeScript (a string-literal union, as Coder's generator emits) and JSON Schema.

/// Declares a forward-compatible string enum.
///
/// ```text
/// string_enum! {
///     /// Docs.
///     pub enum ChatStatus {
///         /// Docs.
///         Pending = "pending",
///     }
///     aliases { "old" => Pending }   // optional extra accepted spellings
/// }
/// ```
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal,
            )+
        }
        $(aliases { $($alias:literal => $avariant:ident),* $(,)? })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
            /// A value this version does not know (sent by a newer peer). It is kept
            /// verbatim so that it round-trips unchanged.
            Unknown(String),
        }

        impl $name {
            /// Every value this version knows, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $value,)+
                    $name::Unknown(s) => s.as_str(),
                }
            }

            /// Whether this is a value this version does not know.
            pub fn is_unknown(&self) -> bool {
                matches!(self, $name::Unknown(_))
            }

            /// Parses a wire string exactly (case-sensitive); unknown strings become
            /// [`Self::Unknown`].
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $($value => $name::$variant,)+
                    $($($alias => $name::$avariant,)*)?
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_wire(s))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " string"))
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from_wire(v))
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl ::ts_rs::TS for $name {
            type WithoutGenerics = Self;
            type OptionInnerType = Self;
            const IS_ENUM: bool = true;

            fn docs() -> Option<String> {
                Some(concat!("/**\n * ", stringify!($name),
                    ": a string union. Values outside it may arrive from newer servers.\n */\n")
                    .to_owned())
            }
            fn name(_: &::ts_rs::Config) -> String {
                stringify!($name).to_owned()
            }
            fn inline(_: &::ts_rs::Config) -> String {
                let values: &[&str] = &[$(concat!("\"", $value, "\"")),+];
                values.join(" | ")
            }
            fn decl(cfg: &::ts_rs::Config) -> String {
                format!("type {} = {};", stringify!($name), <Self as ::ts_rs::TS>::inline(cfg))
            }
            fn decl_concrete(cfg: &::ts_rs::Config) -> String {
                <Self as ::ts_rs::TS>::decl(cfg)
            }
            fn output_path() -> Option<::std::path::PathBuf> {
                Some(::std::path::PathBuf::from(concat!(stringify!($name), ".ts")))
            }
        }

        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                // A schema describes what a client should send, so it lists only the
                // known values even though readers tolerate others.
                ::schemars::json_schema!({
                    "type": "string",
                    "enum": [$($value),+]
                })
            }
        }
    };
}

pub(crate) use string_enum;
