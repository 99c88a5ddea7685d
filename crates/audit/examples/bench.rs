//! The audit benchmark without the rest of the CLI:
//! `cargo run --release -p rxvault-audit --example bench -- [entries] [query entries]`
//! (`rxvault audit bench` runs the same code with flags).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let entries = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let query_entries = args.next().map_or(Ok(0), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    rxvault_audit::bench::run(
        &rxvault_audit::bench::BenchConfig {
            dir: dir.path().to_path_buf(),
            entries,
            producers: 4,
            window: 16_384,
            query_entries,
            queries: 100,
        },
        &mut |line| println!("{line}"),
    )?;
    Ok(())
}
