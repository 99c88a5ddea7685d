//! `rxvault agent …`: the workstation agent (`run`), its benchmark
//! (`bench`), and the test bed's ransomware simulator (`simulate`, hidden:
//! it only runs on a folder the test bed created).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rxvault_agent::agent::Agent;
use rxvault_agent::config::Config;
use rxvault_agent::report::DiskBuffer;
use rxvault_agent::testbed::{Simulation, Strain, Testbed};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// The agent's commands.
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Watch the configured folders and stop processes that behave like
    /// ransomware (runs as root: fanotify).
    Run(RunArgs),
    /// Measure the agent: files damaged per strain, canary → SIGSTOP
    /// latency, CPU and RSS, small-write slowdown (as root).
    Bench(crate::agent_bench::BenchArgs),
    /// Run a ransomware strain over a test bed folder (test bed only).
    #[command(hide = true)]
    Simulate(SimulateArgs),
    /// Create a test bed folder with a generated corpus; prints its path.
    #[command(hide = true)]
    Testbed(TestbedArgs),
}

/// `agent testbed`.
#[derive(Args, Debug)]
pub struct TestbedArgs {
    /// Where to create it (under the temporary directory).
    #[arg(long)]
    parent: PathBuf,
    /// Files in the corpus.
    #[arg(long, default_value_t = 500)]
    files: usize,
    /// Corpus seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `agent run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The TOML configuration (see `rxvault_agent::config`).
    #[arg(long, env = "RXVAULT_AGENT_CONFIG")]
    config: PathBuf,
}

/// `agent simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The strain: in-place, copy-delete, rename-only, intermittent,
    /// header-only, slow, many-processes, notes, mmap.
    #[arg(long)]
    strain: String,
    /// The test bed folder (must hold the test bed's marker).
    #[arg(long)]
    dir: PathBuf,
    /// Only this file (the workers of many-processes).
    #[arg(long)]
    file: Option<PathBuf>,
}

/// Runs an agent command.
pub fn run(cmd: AgentCommand) -> Result<ExitCode> {
    match cmd {
        AgentCommand::Run(a) => {
            let cfg = Config::load(&a.config)?;
            if let Some(dir) = cfg.buffer.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let buffer = DiskBuffer::open(&cfg.buffer, cfg.buffer_max_bytes)?;
            let folders = cfg.watch.len();
            let mut agent = Agent::start(cfg, Box::new(buffer), crate::clock())?;
            outln!(
                "rxvault agent: watching {folders} folder(s), {} canaries",
                agent.canaries().len()
            );
            let stop = AtomicBool::new(false);
            let stats = agent.run(&stop)?;
            outln!(
                "rxvault agent: stopped after {} events, {} detections",
                stats.events,
                stats.detections
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Bench(a) => {
            crate::agent_bench::run(a)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Testbed(a) => {
            let bed = Testbed::create(&a.parent)?;
            bed.generate(a.files, a.seed)?;
            outln!("{}", bed.root().display());
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Simulate(a) => {
            let bed = Testbed::open(&a.dir)?;
            let strain = Strain::parse(&a.strain)?;
            let exe = std::env::current_exe().context("locating rxvault")?;
            let worker = vec![
                exe.display().to_string(),
                "agent".into(),
                "simulate".into(),
                "--strain".into(),
                "in-place".into(),
                "--dir".into(),
                bed.root().display().to_string(),
            ];
            let done = rxvault_agent::testbed::simulate(
                &bed,
                &Simulation {
                    strain,
                    only: a.file,
                    worker,
                },
            )?;
            outln!("{done}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
