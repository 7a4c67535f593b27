use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered, globally unique id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Ids come from clients as strings; anything longer than a UUID is not ours.
            pub fn parse(s: &str) -> Option<Self> {
                (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                    .then(|| Self(s.to_owned()))
            }
            /// For values read back from the store, which only holds ids we generated.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(RestaurantId);
id_type!(TableId);
id_type!(MenuItemId);
id_type!(OrderId);
id_type!(StaffCallId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn hostile_ids_are_refused() {
        assert_eq!(OrderId::parse(""), None);
        assert_eq!(OrderId::parse("' OR 1=1 --"), None);
        assert_eq!(OrderId::parse(&"a".repeat(65)), None);
        assert_eq!(OrderId::parse("ab\u{0}c"), None);
    }
}
