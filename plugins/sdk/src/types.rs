//! Column type names as written in pipeline files (`schema = { Quantity = "int64" }`).

use arrow::datatypes::{DataType, TimeUnit};

/// Parses a column type name; `None` if the name is not known.
pub fn parse_type_name(name: &str) -> Option<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    Some(match lower.as_str() {
        "string" | "str" | "utf8" | "text" => DataType::Utf8,
        "int" | "int64" | "integer" | "bigint" | "long" => DataType::Int64,
        "int32" => DataType::Int32,
        "float" | "float64" | "double" => DataType::Float64,
        "float32" => DataType::Float32,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        _ => return None,
    })
}

/// The names `parse_type_name` accepts, for "expected one of" messages.
pub const TYPE_NAMES: &[&str] =
    &["string", "int64", "int32", "float64", "float32", "bool", "date", "timestamp"];

/// The pipeline-file name of an Arrow type (falls back to Arrow's own name).
pub fn type_name(ty: &DataType) -> String {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 => "int64".into(),
        DataType::Int32 => "int32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Boolean => "bool".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_round_trips() {
        for name in TYPE_NAMES {
            let ty = parse_type_name(name).unwrap_or_else(|| panic!("{name} must parse"));
            assert_eq!(&type_name(&ty), name);
        }
        assert_eq!(parse_type_name("INT"), Some(DataType::Int64));
        assert_eq!(parse_type_name("decimal"), None);
    }
}
