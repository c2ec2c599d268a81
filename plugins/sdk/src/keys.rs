//! Declared configuration keys. The runner validates a stage's table against these before
//! anything runs (unknown keys, wrong types, missing required keys) and the docs test checks
//! that every declared key is documented.

/// The TOML type a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// A float or an integer.
    Float,
    /// `true` or `false`.
    Bool,
    /// A string or an array of strings.
    StringOrList,
    /// An array of strings.
    StringList,
    /// An array of any values (checked by the component).
    Array,
    /// A table (checked by the component).
    Table,
    /// Any TOML value (checked by the component).
    Any,
}

impl KeyType {
    /// How the type is named in diagnostics and docs.
    pub fn describe(self) -> &'static str {
        match self {
            KeyType::String => "a string",
            KeyType::Integer => "an integer",
            KeyType::Float => "a number",
            KeyType::Bool => "a boolean",
            KeyType::StringOrList => "a string or an array of strings",
            KeyType::StringList => "an array of strings",
            KeyType::Array => "an array",
            KeyType::Table => "a table",
            KeyType::Any => "any value",
        }
    }
}

/// One configuration key a stage kind, connector or model accepts.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as written in the pipeline file.
    pub name: &'static str,
    /// The type it accepts.
    pub ty: KeyType,
    /// Whether the key must be present.
    pub required: bool,
    /// The default, as shown in docs (`None` when required or when absence means "off").
    pub default: Option<&'static str>,
    /// One line of documentation.
    pub doc: &'static str,
    /// How the key is written in a pipeline file, for the reference.
    pub example: Option<&'static str>,
}

impl KeySpec {
    /// A required key.
    pub const fn required(name: &'static str, ty: KeyType, doc: &'static str) -> Self {
        KeySpec { name, ty, required: true, default: None, doc, example: None }
    }

    /// An optional key with a documented default.
    pub const fn optional(
        name: &'static str,
        ty: KeyType,
        default: Option<&'static str>,
        doc: &'static str,
    ) -> Self {
        KeySpec { name, ty, required: false, default, doc, example: None }
    }

    /// Adds an example of the key as written in a pipeline file.
    pub const fn example(mut self, example: &'static str) -> Self {
        self.example = Some(example);
        self
    }
}
