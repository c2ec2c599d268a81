//! The key tables of `docs/pipeline-reference.md`, generated from the same `KeySpec` tables
//! the compiler checks against, so the reference cannot fall behind the code.

use sluice_core::Registry;
use sluice_core::compile::{PIPELINE_KEYS, TOP_LEVEL_KEYS, UNIVERSAL_STAGE_KEYS};
use sluice_plugin::KeySpec;

/// A markdown table of keys: name, type, default, description, example.
pub fn key_table(keys: &[KeySpec]) -> String {
    let mut out = String::from("| key | type | default | description | example |\n|---|---|---|---|---|\n");
    for k in keys {
        let default = match (k.required, k.default) {
            (true, _) => "required".to_string(),
            (false, Some(d)) => format!("`{d}`"),
            (false, None) => "—".to_string(),
        };
        let example = k.example.map_or_else(|| "—".to_string(), |e| format!("`{}`", e.replace('|', "\\|")));
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.name,
            k.ty.describe(),
            default,
            k.doc.replace('|', "\\|"),
            example
        ));
    }
    out
}

/// Every generated section: (marker name, table).
pub fn sections(registry: &Registry) -> Vec<(String, String)> {
    let mut out = vec![
        ("top-level".to_string(), key_table(TOP_LEVEL_KEYS)),
        ("pipeline".to_string(), key_table(PIPELINE_KEYS)),
        ("stage".to_string(), key_table(UNIVERSAL_STAGE_KEYS)),
        ("collect".to_string(), key_table(crate::collect::COLLECT_KEYS)),
        ("feature-extract".to_string(), key_table(crate::feature::FEATURE_KEYS)),
        ("clean".to_string(), key_table(crate::clean::CLEAN_KEYS)),
        ("split".to_string(), key_table(crate::split::SPLIT_KEYS)),
    ];
    for c in registry.connectors() {
        out.push((format!("connector {}", c.name()), key_table(c.keys())));
    }
    out
}

/// Replaces every `<!-- keys: NAME -->` … `<!-- /keys -->` block with its generated table.
pub fn regenerate(doc: &str, registry: &Registry) -> Result<String, String> {
    let mut out = doc.to_string();
    for (name, table) in sections(registry) {
        let open = format!("<!-- keys: {name} -->\n");
        let start =
            out.find(&open).ok_or_else(|| format!("the reference has no `<!-- keys: {name} -->` section"))?
                + open.len();
        let end =
            out[start..].find("<!-- /keys -->").ok_or_else(|| format!("section `{name}` is not closed"))?
                + start;
        out.replace_range(start..end, &table);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sluice_core::{CompileOptions, SourceFile, compile};

    use super::*;

    fn doc_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/pipeline-reference.md")
    }

    /// Fails when the code accepts a key the reference does not document (or documents
    /// one differently). `SLUICE_BLESS=1` rewrites the tables.
    #[test]
    fn reference_documents_every_key_the_code_accepts() {
        let registry = crate::registry();
        let doc = std::fs::read_to_string(doc_path()).unwrap();
        let fresh = regenerate(&doc, &registry).unwrap();
        if std::env::var_os("SLUICE_BLESS").is_some() {
            std::fs::write(doc_path(), &fresh).unwrap();
            return;
        }
        assert!(
            doc == fresh,
            "docs/pipeline-reference.md is out of date with the keys the code accepts; \
             run `SLUICE_BLESS=1 cargo test -p sluice-stages reference` and describe the new keys"
        );
    }

    /// Every key of every component carries an example for the reference.
    #[test]
    fn every_key_has_an_example() {
        let registry = crate::registry();
        let mut keys: Vec<(String, KeySpec)> = Vec::new();
        for (section, list) in [
            ("top-level", TOP_LEVEL_KEYS),
            ("pipeline", PIPELINE_KEYS),
            ("stage", UNIVERSAL_STAGE_KEYS),
            ("collect", crate::collect::COLLECT_KEYS),
            ("feature-extract", crate::feature::FEATURE_KEYS),
            ("clean", crate::clean::CLEAN_KEYS),
            ("split", crate::split::SPLIT_KEYS),
        ] {
            keys.extend(list.iter().map(|k| (section.to_string(), *k)));
        }
        for c in registry.connectors() {
            keys.extend(c.keys().iter().map(|k| (c.name().to_string(), *k)));
        }
        let missing: Vec<String> = keys
            .iter()
            .filter(|(_, k)| k.example.is_none())
            .map(|(s, k)| format!("{s}.{}", k.name))
            .collect();
        assert!(missing.is_empty(), "keys without an example: {missing:?}");
    }

    /// Every complete pipeline example in the reference compiles.
    #[test]
    fn reference_examples_compile() {
        let registry = crate::registry();
        let doc = std::fs::read_to_string(doc_path()).unwrap();
        let mut n = 0;
        for block in doc.split("```toml\n").skip(1) {
            let example = block.split("```").next().unwrap_or_default();
            if !example.contains("[pipeline]") {
                continue;
            }
            n += 1;
            // Examples use paths relative to pipelines/, where the sample data lives.
            let file = SourceFile::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/example.toml"),
                example,
            );
            let env = |k: &str| (k == "SALES_DIR").then(|| "data".to_string());
            if let Err(diags) = compile(&file, &registry, &CompileOptions { overrides: &[], env: &env }) {
                let text: Vec<String> = diags.iter().map(|d| d.render()).collect();
                panic!("a reference example does not compile:\n{example}\n{}", text.join("\n"));
            }
        }
        assert!(n >= 2, "expected pipeline examples in the reference, found {n}");
    }
}
