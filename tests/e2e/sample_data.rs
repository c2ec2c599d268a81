//! The sample data shipped in `pipelines/data/` is generated here, so it is small, synthetic
//! and reproducible. `SLUICE_BLESS=1 cargo nextest run sample_data` rewrites the files; the
//! test fails when a checked-in file differs from what this code generates.

use std::fmt::Write as _;
use std::path::Path;

/// A tiny deterministic PRNG (splitmix64), so the file is identical on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PRODUCTS: &[(&str, &str, f64)] = &[
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55),
    ("71053", "WHITE METAL LANTERN", 3.39),
    ("84406B", "CREAM CUPID HEARTS COAT HANGER", 2.75),
    ("22423", "REGENCY CAKESTAND 3 TIER", 12.75),
    ("47566", "PARTY BUNTING", 4.95),
    ("20725", "LUNCH BAG RED RETROSPOT", 1.65),
    ("22720", "SET OF 3 CAKE TINS PANTRY DESIGN", 4.95),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 1.69),
    ("22197", "POPCORN HOLDER", 0.85),
    ("21212", "PACK OF 72 RETROSPOT CAKE CASES", 0.55),
    ("23203", "JUMBO BAG DOILEY PATTERNS", 2.08),
    ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", 2.95),
];
const COUNTRIES: &[&str] = &[
    "United Kingdom",
    "United Kingdom",
    "United Kingdom",
    "Germany",
    "France",
    "EIRE",
    "Spain",
    "Netherlands",
];

/// Orders in the shape of the UCI Online Retail data: a few customers without an id,
/// cancellations (`C` invoices with negative quantities) and repeated lines.
pub fn orders_csv() -> String {
    let mut rng = Rng(42);
    let mut out =
        String::from("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n");
    let customers: Vec<(u64, &str)> =
        (0..60).map(|i| (12_346 + i * 37, COUNTRIES[(i as usize * 7 + 3) % COUNTRIES.len()])).collect();
    let mut invoice = 536_365u64;
    let mut minute = 0u64;
    for _ in 0..400 {
        invoice += 1;
        minute += 30 + rng.below(600);
        let (day, rest) = (minute / 1440, minute % 1440);
        let date = chrono_like(day, rest / 60, rest % 60);
        let anonymous = rng.below(12) == 0;
        let (cust, country) = customers[rng.below(customers.len() as u64) as usize];
        let cancelled = rng.below(15) == 0;
        let lines = 1 + rng.below(6);
        let mut last = String::new();
        for _ in 0..lines {
            let (code, desc, price) = PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize];
            let qty = (1 + rng.below(12)) as i64 * if cancelled { -1 } else { 1 };
            let customer = if anonymous { String::new() } else { format!("{cust}.0") };
            let desc = if desc.contains(',') || desc.contains('\'') {
                format!("\"{desc}\"")
            } else {
                desc.to_string()
            };
            let prefix = if cancelled { "C" } else { "" };
            let line =
                format!("{prefix}{invoice},{code},{desc},{qty},{date},{price:.2},{customer},{country}\n");
            out.push_str(&line);
            last = line;
        }
        // An exact duplicate line now and then, as in the real data.
        if rng.below(20) == 0 {
            out.push_str(&last);
        }
    }
    out
}

/// `2010-12-01 + day` as `YYYY-MM-DD HH:MM:00` (the sample spans a few months).
fn chrono_like(day: u64, hour: u64, minute: u64) -> String {
    let months = [(2010, 12, 31), (2011, 1, 31), (2011, 2, 28), (2011, 3, 31), (2011, 4, 30), (2011, 5, 31)];
    let mut d = day;
    for (y, m, len) in months {
        if d < len {
            let mut s = String::new();
            let _ = write!(s, "{y}-{m:02}-{:02} {hour:02}:{minute:02}:00", d + 1);
            return s;
        }
        d -= len;
    }
    format!("2011-06-30 {hour:02}:{minute:02}:00")
}

#[test]
fn shipped_sample_data_is_what_the_generator_makes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/data/orders.csv");
    let generated = orders_csv();
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{} differs from the generator in tests/e2e/sample_data.rs; run `SLUICE_BLESS=1 cargo nextest run shipped_sample_data` to regenerate",
        path.display()
    );
}
