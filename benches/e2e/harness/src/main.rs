//! `sipreg-e2e DIR MACHINE OUT_STEM`: aggregates one run directory of `benches/e2e/run.sh`
//! into `OUT_STEM.json`, `OUT_STEM.md` and `OUT_STEM.svg`, and prints the markdown table.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, machine, stem] = args.as_slice() else {
        bail!("usage: sipreg-e2e RUN_DIR MACHINE_TEXT OUT_STEM");
    };
    let report = sipreg_e2e::load_dir(&PathBuf::from(dir), machine)?;
    let md = sipreg_e2e::markdown(&report);
    let with = |ext: &str| PathBuf::from(format!("{stem}.{ext}"));
    std::fs::write(with("json"), serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("{stem}.json"))?;
    std::fs::write(with("md"), &md).with_context(|| format!("{stem}.md"))?;
    sipreg_e2e::svg(&report, &with("svg"))?;
    print!("{md}");
    Ok(())
}
