//! Enums that are stored and sent as exact strings.
//!
//! The spec fixes the spelling of every enum value (`resources-and-states.md` §2). Each enum declared
//! with [`str_enum!`] has its spelling written exactly once, and `as_str`, `Display`, `FromStr`,
//! `Serialize` and `Deserialize` are all generated from that one table, so the database column, the
//! API body and the log line can never disagree.

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// What was being parsed, e.g. "phase".
    pub kind: &'static str,
    /// The text that matched no spelling.
    pub value: String,
}

/// Declares a fieldless enum together with its one spelling table.
///
/// `str_enum! { /// docs  pub enum Name : "kind for errors" { Variant => "spelling", ... } }`
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The exact spelling stored in the database and sent over the API.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::str_enum::UnknownValue;

            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::str_enum::UnknownValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

pub(crate) use str_enum;

#[cfg(test)]
mod tests {
    str_enum! {
        /// A test enum.
        enum Colour : "colour" {
            Red => "red",
            DarkBlue => "dark_blue",
        }
    }

    #[test]
    fn spelling_round_trips_through_every_representation() {
        for &c in Colour::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), c);
            assert_eq!(c.as_str().parse::<Colour>().unwrap(), c);
            assert_eq!(c.to_string(), c.as_str());
        }
    }

    #[test]
    fn unknown_spelling_is_an_error_naming_the_kind() {
        let err = "Red".parse::<Colour>().unwrap_err();
        assert_eq!(err.to_string(), "unknown colour \"Red\"");
        assert!(serde_json::from_str::<Colour>("\"green\"").is_err());
    }
}
