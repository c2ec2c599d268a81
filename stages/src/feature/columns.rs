//! Looking columns up in a schema for a transform: unknown names get a "did you mean", and
//! each transform states which types it takes, so the error says what was expected.

use arrow::datatypes::{DataType, Field, Schema};
use sluice_core::diagnostic::suggestion;
use sluice_core::registry::Issue;
use sluice_plugin::types::type_name;

/// What a transform accepts in a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// Any type.
    Any,
    /// Integers and floats.
    Numeric,
    /// Dates and timestamps.
    Temporal,
    /// Types with an order (numbers, text, dates, booleans).
    Ordered,
    /// Types that have a text form (for hashing and vocabularies).
    Textual,
    /// Strings.
    Text,
}

impl Accepts {
    fn takes(self, ty: &DataType) -> bool {
        match self {
            Accepts::Any => true,
            Accepts::Numeric => ty.is_numeric(),
            Accepts::Temporal => is_temporal(ty),
            Accepts::Ordered | Accepts::Textual => {
                ty.is_numeric()
                    || is_temporal(ty)
                    || is_text(ty)
                    || matches!(ty, DataType::Boolean | DataType::Null | DataType::Dictionary(..))
            }
            Accepts::Text => is_text(ty) || matches!(ty, DataType::Null),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Accepts::Any => "any column",
            Accepts::Numeric => "a numeric column",
            Accepts::Temporal => "a date or timestamp column",
            Accepts::Ordered => "a column of numbers, text, dates or booleans",
            Accepts::Textual => "a column of numbers, text, dates or booleans",
            Accepts::Text => "a text column",
        }
    }
}

/// Dates and timestamps.
pub(crate) fn is_temporal(ty: &DataType) -> bool {
    matches!(ty, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))
}

/// Strings of any layout.
pub(crate) fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Finds `name` in `schema` for a transform (`what`, e.g. "sum") configured at `key`.
pub(crate) fn find<'s>(
    schema: &'s Schema,
    name: &str,
    accepts: Accepts,
    key: &str,
    what: &str,
) -> Result<(usize, &'s Field), Issue> {
    let Ok(index) = schema.index_of(name) else {
        let names = schema.fields().iter().map(|f| f.name().as_str());
        let help = suggestion(name, names).unwrap_or_else(|| {
            let all: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!("columns here: {}", all.join(", "))
        });
        return Err(Issue::new(key, format!("unknown column `{name}`")).with_help(help));
    };
    let field = schema.field(index);
    if !accepts.takes(field.data_type()) {
        let mut issue = Issue::new(
            key,
            format!("{what} needs {}; `{name}` is {}", accepts.describe(), type_name(field.data_type())),
        );
        if accepts == Accepts::Temporal && is_text(field.data_type()) {
            issue = issue
                .with_help(format!("parse it first, e.g. derive = {{ {name} = \"to_timestamp({name})\" }}"));
        } else if accepts == Accepts::Numeric && is_text(field.data_type()) {
            issue = issue.with_help(format!(
                "convert it first, e.g. derive = {{ {name} = \"CAST({name} AS DOUBLE)\" }}"
            ));
        }
        return Err(issue);
    }
    Ok((index, field))
}
