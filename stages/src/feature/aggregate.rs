//! Grouped aggregations: `group_by` + `aggregations` (RFM and friends) and `interactions`
//! (user × item tables for recommenders). Both sort their output by the group keys, so the
//! result is the same on every run. `group_by` is computed by [`hash_aggregate`] when every
//! part of it is a shape that covers, else (and `interactions` always) by one DataFusion query.

use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::compute::kernels::boolean::or;
use arrow::compute::{is_null, max as max_of};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_core::diagnostic::suggestion;
use sluice_core::registry::Issue;

use super::columns::{Accepts, find};
use super::config::At;
use super::datetime::{DAY_US, RefTime, days_between, to_micros};
use super::hash_aggregate::{self, Func};
use super::step::{Applied, Failure, Transform};
use super::table::{ROW_ID, Table, quote};

/// Every function by its config name, with what it accepts.
const FUNCS: &[(&str, Func, Accepts)] = &[
    ("count", Func::Count, Accepts::Any),
    ("count_distinct", Func::CountDistinct, Accepts::Ordered),
    ("sum", Func::Sum, Accepts::Numeric),
    ("mean", Func::Mean, Accepts::Numeric),
    ("min", Func::Min, Accepts::Ordered),
    ("max", Func::Max, Accepts::Ordered),
    ("first", Func::First, Accepts::Any),
    ("last", Func::Last, Accepts::Any),
    ("recency", Func::Recency, Accepts::Temporal),
];

/// The reference date of `recency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference {
    /// One day after the column's maximum over the whole input.
    AfterMax,
    /// A date or time written in the file.
    At(RefTime),
}

/// One `NAME = { FUNC = "COLUMN", ... }` entry.
#[derive(Debug, Clone)]
struct Aggregation {
    name: String,
    name_key: String,
    func: Func,
    accepts: Accepts,
    column: String,
    column_key: String,
    order_by: Option<(String, String)>,
    reference: Reference,
}

/// The `group_by` + `aggregations` transform.
#[derive(Debug)]
pub(crate) struct GroupBy {
    keys: Vec<(String, String)>,
    aggregations: Vec<Aggregation>,
}

fn parse_aggregation(name: &str, at: &At<'_>) -> Result<Aggregation, Issue> {
    let table = at.table()?;
    let funcs: Vec<&str> = FUNCS.iter().map(|(n, _, _)| *n).collect();
    let mut found = None;
    for k in table.keys() {
        if let Some(f) = FUNCS.iter().find(|(n, _, _)| n == k) {
            if found.is_some() {
                return Err(at.issue(format!("aggregation `{name}` names more than one function")));
            }
            found = Some(*f);
        } else if !matches!(k.as_str(), "order_by" | "reference") {
            let known = funcs.iter().copied().chain(["order_by", "reference"]);
            let help = suggestion(k, known).unwrap_or_else(|| format!("functions: {}", funcs.join(", ")));
            return Err(Issue::new(format!("{}.{k}", at.key), format!("unknown key `{k}` in `{}`", at.key))
                .with_help(help));
        }
    }
    let Some((fname, func, accepts)) = found else {
        return Err(at.issue(format!("aggregation `{name}` names no function")).with_help(format!(
            "write e.g. {name} = {{ sum = \"amount\" }}; functions: {}",
            funcs.join(", ")
        )));
    };
    let col = at.require(fname)?;
    let column = col.str()?.to_string();
    if column == "*" && func != Func::Count {
        return Err(col.issue("`*` only works with `count`"));
    }
    let order_by = match at.get("order_by") {
        Some(o) if matches!(func, Func::First | Func::Last) => Some((o.str()?.to_string(), o.key.clone())),
        Some(o) => return Err(o.issue("`order_by` only applies to `first` and `last`")),
        None if matches!(func, Func::First | Func::Last) => {
            return Err(at.issue(format!("`{fname}` needs `order_by` to be deterministic")).with_help(
                format!("write {name} = {{ {fname} = \"{column}\", order_by = \"InvoiceDate\" }}"),
            ));
        }
        None => None,
    };
    let reference = match at.get("reference") {
        Some(r) if func == Func::Recency => match r.str()? {
            "max" => Reference::AfterMax,
            text => Reference::At(RefTime::parse(text).ok_or_else(|| {
                r.issue(format!("`{text}` is not a date"))
                    .with_help("write \"max\" or a date such as \"2011-12-10\"")
            })?),
        },
        Some(r) => return Err(r.issue("`reference` only applies to `recency`")),
        None => Reference::AfterMax,
    };
    Ok(Aggregation {
        name: name.to_string(),
        name_key: at.key.clone(),
        func,
        accepts,
        column,
        column_key: col.key,
        order_by,
        reference,
    })
}

impl GroupBy {
    /// Reads `group_by` (a column or a list) and `aggregations` (a table of entries).
    pub fn parse(
        group_by: Option<&At<'_>>,
        aggregations: Option<&At<'_>>,
        missing_key: &str,
    ) -> Result<Self, Issue> {
        let (Some(group_by), Some(aggregations)) = (group_by, aggregations) else {
            let which = if group_by.is_none() { "group_by" } else { "aggregations" };
            return Err(Issue::new(missing_key, format!("`group_by` and `aggregations` go together; `{which}` is missing"))
                .with_help("write group_by = [\"CustomerID\"] and aggregations = { orders = { count = \"*\" } }; use group_by = [] for one row over the whole table"));
        };
        let keys = match group_by.value {
            serde_json::Value::String(s) => vec![(s.clone(), group_by.key.clone())],
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| At::new(format!("{}.{i}", group_by.key), v))
                .map(|a| Ok((a.str()?.to_string(), a.key.clone())))
                .collect::<Result<_, Issue>>()?,
            _ => return Err(group_by.expected("a column name or an array of column names")),
        };
        let mut list = Vec::new();
        for (name, at) in aggregations.entries()? {
            list.push(parse_aggregation(name, &at)?);
        }
        if list.is_empty() {
            return Err(aggregations.issue("`aggregations` needs at least one entry"));
        }
        // Every output column once: a key listed twice, or an aggregation named like a key,
        // would write a file with two columns of one name.
        for (i, (k, key)) in keys.iter().enumerate() {
            if keys[..i].iter().any(|(earlier, _)| earlier == k) {
                return Err(Issue::new(key.clone(), format!("`{k}` is listed twice in `group_by`")));
            }
        }
        if let Some(a) = list.iter().find(|a| keys.iter().any(|(k, _)| *k == a.name)) {
            return Err(Issue::new(
                a.name_key.clone(),
                format!("`{}` is already a `group_by` column", a.name),
            )
            .with_help("give the aggregation another name"));
        }
        Ok(GroupBy { keys, aggregations: list })
    }

    fn sql(&self, schema: &Schema) -> String {
        let mut select: Vec<String> = self.keys.iter().map(|(k, _)| quote(k)).collect();
        for a in &self.aggregations {
            let c = if a.column == "*" { "*".to_string() } else { quote(&a.column) };
            let ty = schema.field_with_name(&a.column).ok().map(|f| f.data_type());
            let float = ty.is_some_and(DataType::is_floating);
            let expr = match a.func {
                Func::Count => format!("COUNT({c})"),
                // The engine's distinct set tells -0.0 from 0.0 while its GROUP BY (and
                // pandas' nunique) does not: zeros are made one value first.
                Func::CountDistinct if float => {
                    format!("COUNT(DISTINCT CASE WHEN {c} = 0 THEN 0 ELSE {c} END)")
                }
                Func::CountDistinct => format!("COUNT(DISTINCT {c})"),
                Func::Sum => format!("SUM({c})"),
                Func::Mean if ty.is_some_and(|t| !float && !t.is_integer()) => {
                    crate::sql::decimal_mean(&c, "")
                }
                Func::Mean => format!("AVG({c})"),
                Func::Min if float => crate::sql::float_min_max("MIN", &c, ""),
                Func::Max if float => crate::sql::float_min_max("MAX", &c, ""),
                Func::Min => format!("MIN({c})"),
                Func::Max | Func::Recency => format!("MAX({c})"),
                // Rows with a null `order_by` come last either way; input position breaks ties.
                Func::First | Func::Last => {
                    let (o, _) = a.order_by.as_ref().map_or((String::new(), String::new()), Clone::clone);
                    let dir = if a.func == Func::First { "ASC" } else { "DESC" };
                    format!(
                        "first_value({c} ORDER BY {} {dir} NULLS LAST, {} {dir})",
                        quote(&o),
                        quote(ROW_ID)
                    )
                }
            };
            select.push(format!("{expr} AS {}", quote(&a.name)));
        }
        let mut sql = format!("SELECT {} FROM t", select.join(", "));
        if !self.keys.is_empty() {
            let keys: Vec<String> = self.keys.iter().map(|(k, _)| quote(k)).collect();
            let order: Vec<String> = keys.iter().map(|k| format!("{k} ASC NULLS LAST")).collect();
            sql.push_str(&format!(" GROUP BY {} ORDER BY {}", keys.join(", "), order.join(", ")));
        }
        sql
    }

    /// Turns each recency column (the latest value per group) into whole days.
    fn recency(&self, table: Table) -> Result<Table, Failure> {
        let mut plan = Vec::new();
        for a in self.aggregations.iter().filter(|a| a.func == Func::Recency) {
            let index = table.schema.index_of(&a.name)?;
            let latest: Vec<Int64Array> =
                table.column(index).iter().map(|c| to_micros(c.as_ref())).collect::<Result<_, _>>()?;
            let reference = match a.reference {
                Reference::At(r) => r.on_clock_of(table.schema.field(index).data_type())?,
                Reference::AfterMax => latest.iter().filter_map(max_of).max().unwrap_or(0) + DAY_US,
            };
            plan.push((index, reference, latest));
        }
        if plan.is_empty() {
            return Ok(table);
        }
        let fields: Vec<Field> = table
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match plan.iter().any(|(j, _, _)| *j == i) {
                true => Field::new(f.name(), DataType::Int64, true),
                false => f.as_ref().clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, table.schema.metadata().clone()));
        let mut batch_no = 0;
        table.map_batches(schema, |b| {
            let mut columns = b.columns().to_vec();
            for (index, reference, latest) in &plan {
                let days: Int64Array =
                    latest[batch_no].iter().map(|v| v.map(|v| days_between(v, *reference))).collect();
                columns[*index] = Arc::new(days);
            }
            batch_no += 1;
            Ok(columns)
        })
    }
}

impl Transform for GroupBy {
    fn op(&self) -> &'static str {
        "group_by"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (k, key) in &self.keys {
            issues.extend(find(input, k, Accepts::Ordered, key, "group_by").err());
        }
        for a in &self.aggregations {
            if a.column != "*" {
                let what = FUNCS.iter().find(|(_, f, _)| *f == a.func).map_or("aggregation", |(n, _, _)| *n);
                issues.extend(find(input, &a.column, a.accepts, &a.column_key, what).err());
            }
            if let Some((o, key)) = &a.order_by {
                issues.extend(find(input, o, Accepts::Ordered, key, "order_by").err());
            }
            if self.keys.iter().any(|(k, _)| *k == a.name) {
                issues.push(Issue::new(
                    a.name_key.clone(),
                    format!("aggregation `{}` has the name of a group_by column", a.name),
                ));
            }
        }
        issues
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        if let Some(out) = self.native(&input)? {
            return Ok(self.recency(out)?.into());
        }
        let needs_order = self.aggregations.iter().any(|a| matches!(a.func, Func::First | Func::Last));
        let input = if needs_order { input.with_row_ids()? } else { input };
        let out = input.query(&self.sql(&input.schema))?;
        Ok(self.recency(out)?.into())
    }
}

impl GroupBy {
    /// The aggregation computed without the query engine, when every part of it is a shape
    /// [`hash_aggregate`] covers.
    fn native(&self, input: &Table) -> Result<Option<Table>, Failure> {
        let keys = self.keys.iter().map(|(k, _)| input.schema.index_of(k)).collect::<Result<Vec<_>, _>>()?;
        let mut outputs = Vec::with_capacity(self.aggregations.len());
        for a in &self.aggregations {
            let func = a.func;
            let column = match a.column.as_str() {
                "*" if a.func == Func::Count => None,
                "*" => return Ok(None),
                c => Some(input.schema.index_of(c)?),
            };
            outputs.push(hash_aggregate::Output { name: &a.name, func, column });
        }
        Ok(hash_aggregate::aggregate(input, &keys, &outputs)?)
    }
}

/// How an interaction is weighed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Weight {
    /// Rows per (user, item).
    Count,
    /// Sum of a column per (user, item).
    Sum(String, String),
    /// The latest `time` per (user, item).
    LastSeen,
}

/// The `interactions` transform: a `user`, `item`, `weight` table.
#[derive(Debug)]
pub(crate) struct Interactions {
    user: (String, String),
    item: (String, String),
    weight: Weight,
    time: Option<(String, String)>,
}

impl Interactions {
    /// Reads `interactions = { user, item, weight, time }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        at.only(&["user", "item", "weight", "time"], &["user", "item"])?;
        let named = |name: &str| -> Result<(String, String), Issue> {
            let v = at.require(name)?;
            Ok((v.str()?.to_string(), v.key.clone()))
        };
        let time =
            at.get("time").map(|t| Ok::<_, Issue>((t.str()?.to_string(), t.key.clone()))).transpose()?;
        let weight_key = format!("{}.weight", at.key);
        let weight = match at.get("weight") {
            None => Weight::Count,
            Some(w) => match w.value {
                serde_json::Value::String(s) if s == "count" => Weight::Count,
                serde_json::Value::String(s) if s == "last_seen" => Weight::LastSeen,
                serde_json::Value::Object(_) => {
                    w.only(&["sum"], &["sum"])?;
                    let s = w.require("sum")?;
                    Weight::Sum(s.str()?.to_string(), s.key.clone())
                }
                _ => {
                    return Err(w
                        .issue("unknown weight")
                        .with_help("use \"count\", \"last_seen\" (with `time`) or { sum = \"COLUMN\" }"));
                }
            },
        };
        if weight == Weight::LastSeen && time.is_none() {
            return Err(Issue::new(weight_key, "`last_seen` needs `time = \"COLUMN\"`"));
        }
        Ok(Interactions { user: named("user")?, item: named("item")?, weight, time })
    }
}

impl Transform for Interactions {
    fn op(&self) -> &'static str {
        "interactions"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(find(input, &self.user.0, Accepts::Ordered, &self.user.1, "interactions").err());
        issues.extend(find(input, &self.item.0, Accepts::Ordered, &self.item.1, "interactions").err());
        if let Weight::Sum(c, key) = &self.weight {
            issues.extend(find(input, c, Accepts::Numeric, key, "sum").err());
        }
        if let Some((t, key)) = &self.time {
            issues.extend(find(input, t, Accepts::Temporal, key, "time").err());
        }
        issues
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let (u, _) = find(&input.schema, &self.user.0, Accepts::Ordered, &self.user.1, "interactions")?;
        let (i, _) = find(&input.schema, &self.item.0, Accepts::Ordered, &self.item.1, "interactions")?;
        let mut dropped = 0u64;
        for b in &input.batches {
            dropped += or(&is_null(b.column(u))?, &is_null(b.column(i))?)?.true_count() as u64;
        }
        let weight = match &self.weight {
            Weight::Count => "COUNT(*)".to_string(),
            Weight::Sum(c, _) => format!("SUM({})", quote(c)),
            Weight::LastSeen => {
                let (t, _) = self.time.as_ref().map_or((String::new(), String::new()), Clone::clone);
                format!("MAX({})", quote(&t))
            }
        };
        let (uq, iq) = (quote(&self.user.0), quote(&self.item.0));
        let sql = format!(
            "SELECT {uq} AS \"user\", {iq} AS \"item\", {weight} AS \"weight\" FROM t \
             WHERE {uq} IS NOT NULL AND {iq} IS NOT NULL GROUP BY {uq}, {iq} ORDER BY {uq}, {iq}"
        );
        Ok(Applied { table: input.query(&sql)?, dropped })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use serde_json::json;

    use super::*;
    use crate::feature::datetime::parse_instant;
    use crate::feature::testing::{batch, f64s, i64s, strs};

    fn ts(s: &str) -> Option<i64> {
        Some(parse_instant(s).unwrap())
    }

    /// Five order lines of three customers (one without a customer id).
    fn orders() -> Table {
        batch(vec![
            (
                "CustomerID",
                Arc::new(StringArray::from(vec![Some("A"), Some("B"), Some("A"), None, Some("A")])),
            ),
            ("InvoiceNo", Arc::new(StringArray::from(vec!["1", "2", "3", "4", "3"]))),
            ("amount", Arc::new(Float64Array::from(vec![Some(10.0), Some(5.5), Some(2.5), Some(1.0), None]))),
            (
                "InvoiceDate",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    ts("2011-12-01 10:00:00"),
                    ts("2011-12-09 12:00:00"),
                    ts("2011-12-05 09:00:00"),
                    ts("2011-12-09 18:00:00"),
                    ts("2011-12-05 09:00:00"),
                ])),
            ),
            ("Country", Arc::new(StringArray::from(vec!["UK", "FR", "DE", "UK", "ES"]))),
        ])
    }

    fn group_by(g: serde_json::Value, a: serde_json::Value) -> GroupBy {
        GroupBy::parse(Some(&At::new("group_by", &g)), Some(&At::new("aggregations", &a)), "group_by")
            .unwrap()
    }

    fn rfm() -> GroupBy {
        group_by(
            json!(["CustomerID"]),
            json!({
                "recency": { "recency": "InvoiceDate", "reference": "2011-12-10" },
                "frequency": { "count_distinct": "InvoiceNo" },
                "monetary": { "sum": "amount" },
                "lines": { "count": "*" },
                "mean": { "mean": "amount" },
                "first_order": { "min": "InvoiceDate" },
                "first_country": { "first": "Country", "order_by": "InvoiceDate" },
                "last_country": { "last": "Country", "order_by": "InvoiceDate" },
                "recency_max": { "recency": "InvoiceDate", "reference": "max" },
            }),
        )
    }

    #[test]
    fn rfm_by_hand() {
        let g = rfm();
        assert!(g.check(&orders().schema).is_empty());
        let out = g.apply(orders()).unwrap().table;
        // Sorted by CustomerID, the null group last.
        assert_eq!(strs(&out, "CustomerID"), vec![Some("A".into()), Some("B".into()), None]);
        // A's latest order is 2011-12-05 09:00: 4 days and 15 hours before the 10th → 4.
        assert_eq!(i64s(&out, "recency"), vec![Some(4), Some(0), Some(0)]);
        assert_eq!(i64s(&out, "frequency"), vec![Some(2), Some(1), Some(1)]);
        assert_eq!(f64s(&out, "monetary"), vec![Some(12.5), Some(5.5), Some(1.0)]);
        assert_eq!(i64s(&out, "lines"), vec![Some(3), Some(1), Some(1)]);
        assert_eq!(f64s(&out, "mean"), vec![Some(6.25), Some(5.5), Some(1.0)]);
        assert_eq!(strs(&out, "first_order")[0].as_deref(), Some("2011-12-01T10:00:00"));
        // A's two lines at 12-05 09:00 tie: the one written first (DE) is first, the later
        // one (ES) is last.
        assert_eq!(
            strs(&out, "first_country"),
            vec![Some("UK".into()), Some("FR".into()), Some("UK".into())]
        );
        assert_eq!(strs(&out, "last_country"), vec![Some("ES".into()), Some("FR".into()), Some("UK".into())]);
        // "max": one day after 2011-12-09 18:00 = 2011-12-10 18:00.
        assert_eq!(i64s(&out, "recency_max"), vec![Some(5), Some(1), Some(1)]);
    }

    #[test]
    fn runs_are_identical_and_empty_input_gives_the_same_schema() {
        let a = rfm().apply(orders()).unwrap().table;
        let b = rfm().apply(orders()).unwrap().table;
        assert_eq!(a.batches, b.batches);
        let empty = rfm().apply(Table::empty(orders().schema)).unwrap().table;
        assert_eq!(empty.rows(), 0);
        assert_eq!(empty.schema, a.schema);
    }

    #[test]
    fn unknown_columns_and_wrong_types_point_at_the_entry() {
        let g = group_by(
            json!(["CustomerId"]),
            json!({ "monetary": { "sum": "Country" }, "f": { "count_distinct": "InvoiceNumber" } }),
        );
        let issues = g.check(&orders().schema);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert_eq!(issues[0].key, "group_by.0");
        assert_eq!(issues[0].help.as_deref(), Some("did you mean `CustomerID`?"));
        assert_eq!(issues[1].key, "aggregations.monetary.sum");
        assert!(issues[1].message.contains("numeric"), "{}", issues[1].message);
        assert_eq!(issues[2].key, "aggregations.f.count_distinct");
    }

    #[test]
    fn config_mistakes() {
        let g = json!(["CustomerID"]);
        let parse = |a: serde_json::Value| {
            GroupBy::parse(Some(&At::new("group_by", &g)), Some(&At::new("aggregations", &a)), "group_by")
                .unwrap_err()
        };
        let e = parse(json!({ "x": { "summ": "amount" } }));
        assert_eq!(e.key, "aggregations.x.summ");
        assert_eq!(e.help.as_deref(), Some("did you mean `sum`?"));
        assert!(parse(json!({ "x": { "last": "Country" } })).message.contains("order_by"));
        assert!(
            parse(json!({ "x": { "recency": "d", "reference": "someday" } })).message.contains("not a date")
        );
        let e = GroupBy::parse(Some(&At::new("group_by", &g)), None, "group_by").unwrap_err();
        assert!(e.message.contains("aggregations"));
    }

    #[test]
    fn no_group_keys_is_one_row() {
        let out =
            group_by(json!([]), json!({ "n": { "count": "CustomerID" } })).apply(orders()).unwrap().table;
        assert_eq!(i64s(&out, "n"), vec![Some(4)]);
    }

    #[test]
    fn interactions_drop_and_count_null_users() {
        let v = json!({ "user": "CustomerID", "item": "Country", "weight": { "sum": "amount" } });
        let x = Interactions::parse(&At::new("interactions", &v)).unwrap();
        assert!(x.check(&orders().schema).is_empty());
        let out = x.apply(orders()).unwrap();
        assert_eq!(out.dropped, 1);
        let t = out.table;
        let names: Vec<&str> = t.schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["user", "item", "weight"]);
        assert_eq!(strs(&t, "user"), ["A", "A", "A", "B"].map(|s| Some(s.to_string())).to_vec());
        assert_eq!(strs(&t, "item"), ["DE", "ES", "UK", "FR"].map(|s| Some(s.to_string())).to_vec());
        assert_eq!(f64s(&t, "weight"), vec![Some(2.5), None, Some(10.0), Some(5.5)]);
        assert_eq!(t.batches[0].column(2).null_count(), 1);

        let v = json!({ "user": "CustomerID", "item": "Country", "weight": "last_seen" });
        assert!(Interactions::parse(&At::new("interactions", &v)).unwrap_err().message.contains("time"));
        let v =
            json!({ "user": "CustomerID", "item": "Country", "weight": "last_seen", "time": "InvoiceDate" });
        let t = Interactions::parse(&At::new("interactions", &v)).unwrap().apply(orders()).unwrap().table;
        assert_eq!(strs(&t, "weight")[0].as_deref(), Some("2011-12-05T09:00:00"));
    }

    /// The native result and the query's for the same input; the native one must exist.
    fn both(g: &GroupBy, t: &Table) -> (Table, Table) {
        let native = g.native(t).unwrap().expect("covered by the native path");
        let query = t.query(&g.sql(&t.schema)).unwrap();
        (g.recency(native).unwrap(), g.recency(query).unwrap())
    }

    /// One array per column, over all batches.
    fn columns(t: &Table) -> Vec<ArrayRef> {
        (0..t.schema.fields().len())
            .map(|i| {
                let parts: Vec<&dyn Array> = t.batches.iter().map(|b| b.column(i).as_ref()).collect();
                if parts.is_empty() {
                    arrow::array::new_empty_array(t.schema.field(i).data_type())
                } else {
                    arrow::compute::concat(&parts).unwrap()
                }
            })
            .collect()
    }

    /// Same schema and values; floats may differ in the last bits where the query adds
    /// partial sums in another order (it splits a distinct count into two groupings).
    fn assert_same(native: &Table, query: &Table) {
        assert_eq!(native.schema.fields(), query.schema.fields());
        for (i, (a, b)) in columns(native).iter().zip(columns(query)).enumerate() {
            let name = native.schema.field(i).name();
            if let (Some(x), Some(y)) =
                (a.as_any().downcast_ref::<Float64Array>(), b.as_any().downcast_ref::<Float64Array>())
            {
                assert_eq!(x.len(), y.len(), "{name}");
                for (p, q) in x.iter().zip(y.iter()) {
                    match (p, q) {
                        (Some(p), Some(q)) => assert!(
                            p.to_bits() == q.to_bits() || (p - q).abs() <= 1e-12 * p.abs().max(q.abs()),
                            "{name}: {p} vs {q}"
                        ),
                        (p, q) => assert_eq!(p.is_some(), q.is_some(), "{name}"),
                    }
                }
            } else {
                assert_eq!(a.as_ref(), b.as_ref(), "column {name}");
            }
        }
    }

    /// Every covered function over keys and values with NULLs, NaN, -0.0, unicode, empty
    /// strings, several batches and an all-NULL column.
    fn mixed() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
            Field::new("n", DataType::Int32, true),
            Field::new("u", DataType::UInt16, false),
            Field::new(
                "t",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("+02:00".into())),
                true,
            ),
            Field::new("z", DataType::Float32, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let part = |k: Vec<Option<i64>>, s: Vec<Option<&str>>, x: Vec<Option<f64>>, n: Vec<Option<i32>>| {
            let rows = k.len();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(arrow::array::Int64Array::from(k)),
                Arc::new(StringArray::from(s)),
                Arc::new(Float64Array::from(x)),
                Arc::new(arrow::array::Int32Array::from(n)),
                Arc::new(arrow::array::UInt16Array::from_iter_values((0..rows as u16).map(|i| i * 7 % 5))),
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from_iter(
                        (0..rows as i64).map(|i| {
                            (i % 3 != 1).then_some(1_300_000_000_000 + i * 86_400_000 * (i % 4 - 1))
                        }),
                    )
                    .with_timezone("+02:00"),
                ),
                Arc::new(arrow::array::Float32Array::from(vec![None::<f32>; rows])),
                Arc::new(arrow::array::BooleanArray::from_iter(
                    (0..rows).map(|i| (i % 3 != 2).then_some(i % 2 == 0)),
                )),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let a = part(
            vec![Some(3), None, Some(-1), Some(3), Some(i64::MAX), None],
            vec![Some("b"), Some("é"), None, Some(""), Some("b"), Some("ä")],
            vec![Some(0.1), Some(f64::NAN), Some(-0.0), None, Some(1e300), Some(0.2)],
            vec![Some(i32::MAX), Some(1), None, Some(i32::MAX), Some(-5), None],
        );
        let b = part(
            vec![Some(-1), Some(3), None, Some(7)],
            vec![Some("b"), Some("z"), Some("é"), None],
            vec![Some(0.0), Some(0.3), Some(f64::NEG_INFINITY), None],
            vec![Some(2), None, Some(3), None],
        );
        Table::new(schema, vec![a, b])
    }

    fn everything() -> serde_json::Value {
        json!({
            "rows": { "count": "*" },
            "xs": { "count": "x" },
            "distinct_s": { "count_distinct": "s" },
            "distinct_n": { "count_distinct": "n" },
            "distinct_b": { "count_distinct": "b" },
            "sum_x": { "sum": "x" },
            "sum_n": { "sum": "n" },
            "sum_u": { "sum": "u" },
            "sum_z": { "sum": "z" },
            "mean_x": { "mean": "x" },
            "mean_n": { "mean": "n" },
            "min_s": { "min": "s" },
            "max_s": { "max": "s" },
            "min_t": { "min": "t" },
            "max_u": { "max": "u" },
            "min_x": { "min": "x" },
            "max_x": { "max": "x" },
            "min_z": { "min": "z" },
            "max_z": { "max": "z" },
            "days": { "recency": "t", "reference": "max" },
        })
    }

    #[test]
    fn the_native_aggregation_equals_the_query() {
        let t = mixed();
        for keys in [
            json!(["k"]),
            json!(["s"]),
            json!(["s", "k"]),
            json!(["n", "u"]),
            json!(["u", "t"]),
            json!(["b"]),
            json!([]),
        ] {
            let g = group_by(keys.clone(), everything());
            assert!(g.check(&t.schema).is_empty(), "{keys}");
            let (native, query) = both(&g, &t);
            assert!(native.rows() > 0, "{keys}");
            assert_same(&native, &query);
            // Empty input: no groups with keys, one row without.
            let (native, query) = both(&g, &Table::empty(Arc::clone(&t.schema)));
            assert_same(&native, &query);
            assert_eq!(native.schema, query.schema);
            // Batches that are slices of larger ones (offsets not at zero).
            let sliced = Table::new(
                Arc::clone(&t.schema),
                t.batches.iter().map(|b| b.slice(1, b.num_rows() - 2)).collect(),
            );
            let (native, query) = both(&g, &sliced);
            assert_same(&native, &query);
        }
    }

    #[test]
    fn shapes_the_native_path_does_not_cover_go_to_the_query() {
        let t = orders();
        assert!(rfm().native(&t).unwrap().is_none(), "first/last need the query");
        let g = group_by(json!(["CustomerID"]), json!({ "d": { "count_distinct": "amount" } }));
        assert!(g.native(&t).unwrap().is_none(), "distinct floats go to the query");
        let out = g.apply(t).unwrap().table;
        assert_eq!(i64s(&out, "d"), vec![Some(2), Some(1), Some(1)]);
        // Float extremes skip NaN on both paths.
        let g = group_by(json!(["k"]), json!({ "hi": { "max": "x" }, "lo": { "min": "x" } }));
        let t = mixed();
        let (native, query) = both(&g, &t);
        assert_same(&native, &query);
        assert_eq!(f64s(&native, "hi")[4], Some(0.2), "the NULL-key group holds NaN, 0.2 and -inf");
        // And it puts -0.0 and 0.0 in one group: float keys go there too.
        let g = group_by(json!(["x"]), json!({ "n": { "count": "*" } }));
        assert!(g.native(&t).unwrap().is_none());
        assert_eq!(g.apply(t.clone()).unwrap().table.rows(), 8, "9 distinct bit patterns, 8 groups");
        // count_distinct agrees with the groups: -0.0 and 0.0 are one value, NaN another.
        let g = group_by(json!([]), json!({ "d": { "count_distinct": "x" } }));
        assert_eq!(i64s(&g.apply(t).unwrap().table, "d"), vec![Some(7)]);
    }

    #[test]
    fn float_min_and_max_skip_nan_and_a_group_of_only_nan_gives_nan() {
        let t = batch(vec![
            ("g", Arc::new(arrow::array::Int64Array::from(vec![1, 1, 1, 1, 2, 2, 3]))),
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(2.0),
                    Some(f64::NAN),
                    Some(0.5),
                    Some(f64::NAN),
                    None,
                    None,
                ])),
            ),
            ("o", Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7]))),
        ]);
        let aggs = json!({ "mn": { "min": "x" }, "mx": { "max": "x" } });
        let g = group_by(json!(["g"]), aggs);
        let (native, query) = both(&g, &t);
        // pandas: df.groupby("g").x.agg(["min", "max"]) → (0.5, 2.0), (NaN, NaN), (NaN, NaN)
        for out in [&native, &query] {
            let (mn, mx) = (f64s(out, "mn"), f64s(out, "mx"));
            assert_eq!((mn[0], mx[0]), (Some(0.5), Some(2.0)), "group 1 was max 0.5 before");
            assert!(mn[1].unwrap().is_nan() && mx[1].unwrap().is_nan(), "{mn:?} {mx:?}");
            assert_eq!((mn[2], mx[2]), (None, None), "no value at all stays NULL");
        }
        // Next to `last` the whole aggregation runs as the query: the same answer.
        let g = group_by(
            json!(["g"]),
            json!({ "mn": { "min": "x" }, "mx": { "max": "x" }, "l": { "last": "x", "order_by": "o" } }),
        );
        assert!(g.native(&t).unwrap().is_none());
        let out = g.apply(t).unwrap().table;
        assert_eq!((f64s(&out, "mn")[0], f64s(&out, "mx")[0]), (Some(0.5), Some(2.0)));
        assert!(f64s(&out, "mx")[1].unwrap().is_nan());
    }

    /// Regression: the mean of a decimal(38, 18) failed with "Arithmetic Overflow in
    /// AvgAccumulator" (reported as an internal error); `mean` is float64, as documented.
    #[test]
    fn the_mean_of_a_wide_decimal_is_a_float() {
        let d = arrow::array::Decimal128Array::from(vec![
            20_000_000_000_000_000i128 * 10i128.pow(18),
            10i128.pow(18),
        ])
        .with_precision_and_scale(38, 18)
        .unwrap();
        let t = batch(vec![
            ("k", Arc::new(arrow::array::Int64Array::from(vec![1, 1])) as ArrayRef),
            ("v", Arc::new(d)),
        ]);
        let out = group_by(json!(["k"]), json!({ "m": { "mean": "v" } })).apply(t).unwrap().table;
        assert_eq!(f64s(&out, "m"), vec![Some(1e16)]);
    }

    #[test]
    fn float_sums_are_compensated_like_pandas() {
        let t = batch(vec![
            ("k", Arc::new(arrow::array::Int64Array::from(vec![1; 10])) as ArrayRef),
            ("x", Arc::new(Float64Array::from(vec![0.1; 10]))),
        ]);
        let g = group_by(json!(["k"]), json!({ "s": { "sum": "x" }, "m": { "mean": "x" } }));
        let (native, query) = both(&g, &t);
        // pandas: pd.Series([0.1] * 10).groupby([1] * 10).sum() == 1.0
        assert_eq!(f64s(&native, "s"), vec![Some(1.0)]);
        assert_eq!(f64s(&native, "m"), vec![Some(0.1)]);
        assert_eq!(f64s(&query, "s"), vec![Some(0.9999999999999999)], "plain addition");
    }

    proptest::proptest! {
        /// Random groups and values: the native path gives what the query gives.
        #[test]
        fn random_tables_aggregate_like_the_query(
            rows in proptest::collection::vec(
                (proptest::option::of(0i64..4), proptest::option::of(0u8..3), proptest::option::of(-3i64..3)),
                0..40,
            ),
        ) {
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("v", DataType::Int64, true),
            ]));
            let k: arrow::array::Int64Array = rows.iter().map(|r| r.0).collect();
            let s: StringArray = rows.iter().map(|r| r.1.map(|c| ["a", "é", ""][c as usize])).collect();
            let v: arrow::array::Int64Array = rows.iter().map(|r| r.2).collect();
            let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(s), Arc::new(v)]).unwrap();
            let t = Table::new(schema, vec![b]);
            let g = group_by(json!(["k", "s"]), json!({
                "n": { "count": "*" }, "d": { "count_distinct": "v" }, "sum": { "sum": "v" },
                "mean": { "mean": "v" }, "lo": { "min": "v" }, "hi": { "max": "s" },
            }));
            let (native, query) = both(&g, &t);
            assert_same(&native, &query);
        }
    }
}
