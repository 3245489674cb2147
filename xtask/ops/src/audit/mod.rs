//! `audit`: after a sale, prove from the event log that nobody was skipped,
//! duplicated or let in twice.
//!
//! 1. With `--redis`, first snapshot the admissions Redis records (so that
//!    every one of them was in the outbox before the stream is read).
//! 2. Read the whole stream ([`stream`]) and keep the sale's events, one per
//!    `id` ([`event`], [`fairness::Log`]).
//! 3. Replay them in `id` order ([`fairness`]): counts, duplicates, lost
//!    admissions, inversions (with the pre-queue draw replayed from its
//!    seed, [`draw`]), Kendall's tau-b ([`rank`]) and waits.
//!
//! Exit codes: 0 clean, 1 duplicates or lost admissions, 2 the audit could
//! not run.

mod draw;
mod event;
mod fairness;
mod rank;
mod stream;
mod tickets;

use std::io::Write;

use crate::aws::{self, AwsError};
use crate::progress::Progress;
use crate::Verdict;

pub use fairness::Report;

/// Evidence lines printed per kind of finding, at most.
const SHOW: usize = 10;

const EXIT_CODES: &str = "\
Exit codes: 0 when nothing is wrong, 1 when duplicates or lost admissions were
found, 2 when the audit could not run (no stream, no credentials, Redis down).

AWS settings come from the standard chain: AWS_REGION, AWS_ENDPOINT_URL (moto,
LocalStack), credentials from the environment, a profile or IRSA.";

/// Check a sale's fairness from the event log: every join and admission,
/// duplicates, lost admissions, order and waits.
///
/// Reads the whole Kinesis stream (every shard from TRIM_HORIZON, parents
/// before children, to the tip) and reports on one sale. Copies of an event
/// (same id) count once; the extra copies are `redelivered`. `duplicates`:
/// a ticket admitted twice, or one identity holding two live admissions.
/// `lost`: admissions Redis still records (finished tickets stay an hour)
/// that the stream lacks. `inversions`: pairs admitted against their place
/// while the queue admitted in order (fifo, closed), plus pre-queue fans
/// admitted at a place their draw's seed does not give. `kendall_tau`:
/// Kendall's tau-b between place and admission order (1.0 for a perfect
/// FIFO, near 0 for random). Waits run from `joined` to `admitted`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct Args {
    /// The Kinesis stream the app writes to (its KINESIS_STREAM).
    #[arg(long, value_name = "NAME")]
    pub stream: String,
    /// The sale to audit (its event id); other sales in the stream are
    /// skipped.
    #[arg(long, value_name = "ID")]
    pub event: String,
    /// The sale's Redis, to count admissions missing from the stream:
    /// redis://…, rediss://…, or the comma-separated nodes of a cluster.
    /// Without it `lost` is null.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// The app's KEY_PREFIX (`cargo xtask dev` uses `dev:`).
    #[arg(long, value_name = "P", default_value = "")]
    pub key_prefix: String,
    /// Print exactly one JSON object on stdout (progress and the summary
    /// line stay on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("reading the stream: {0}")]
    Stream(#[from] stream::StreamError),
    #[error("reading the sale's tickets: {0}")]
    Tickets(#[from] tickets::TicketsError),
    #[error("--event must not be empty")]
    NoEvent,
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

pub async fn run(args: &Args) -> Result<Verdict, AuditError> {
    if args.event.is_empty() {
        return Err(AuditError::NoEvent);
    }
    let mut progress = Progress::new("audit");
    let recorded = match &args.redis {
        Some(url) => {
            let target = tickets::Target::parse(url)?;
            let key = tickets::tickets_key(&args.key_prefix, &args.event);
            progress.line(&format!("redis: reading {key}"));
            let r = tickets::recorded(&target, &args.key_prefix, &args.event).await?;
            progress.line(&format!(
                "redis: {} tickets, {} of them admitted{}",
                r.tickets,
                r.admitted.len(),
                if r.unreadable > 0 {
                    format!(", {} records not in the expected shape", r.unreadable)
                } else {
                    String::new()
                }
            ));
            Some(r)
        }
        None => None,
    };

    let config = aws::load().await?;
    progress.line(&format!(
        "reading stream `{}` at {}",
        args.stream,
        aws::describe_target(&config)
    ));
    let reader = stream::StreamReader::new(&config, &args.stream);
    let mut log = fairness::Log::default();
    let started = std::time::Instant::now();
    let totals = reader
        .read(
            |data| {
                for parsed in event::parse_record(data, &args.event) {
                    log.add(parsed);
                }
            },
            &mut progress,
        )
        .await?;
    progress.finish();
    progress.line(&format!(
        "read {} records ({} KiB) from {} shards{} in {:.1} s: {} GetRecords, {} expired iterators renewed, {} throttled, {} retried",
        totals.records,
        totals.bytes / 1024,
        totals.shards,
        if totals.children > 0 {
            format!(" ({} born of a reshard)", totals.children)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64(),
        totals.calls,
        totals.expired_iterators,
        totals.throttled,
        totals.retried,
    ));

    progress.line(&format!(
        "sale `{}`: {} distinct events ({} extra copies)",
        args.event,
        log.len(),
        log.redelivered
    ));
    let findings = fairness::audit(&log, recorded.as_ref().map(|r| &r.admitted));
    explain(&mut progress, args, &log, &findings);
    let report = &findings.report;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(report).map_err(std::io::Error::other)?
        )?;
    } else {
        write!(out, "{}", table(args, report))?;
    }
    out.flush()?;

    let failed = report.duplicates > 0 || report.lost.unwrap_or(0) > 0;
    progress.line(&summary(args, report, failed));
    Ok(if failed {
        Verdict::Findings
    } else {
        Verdict::Clean
    })
}

/// The evidence behind the figures, and whatever limits them, on stderr.
fn explain(progress: &mut Progress, args: &Args, log: &fairness::Log, f: &fairness::Findings) {
    if log.is_empty() {
        let mut others: Vec<(&String, &u64)> = log.other_sales.iter().collect();
        others.sort_by(|a, b| b.1.cmp(a.1));
        let named: Vec<String> = others
            .iter()
            .take(SHOW)
            .map(|(sale, n)| format!("{sale} ({n})"))
            .collect();
        progress.line(&format!(
            "warning: the stream holds no event of `{}`{}",
            args.event,
            if named.is_empty() {
                String::new()
            } else {
                format!("; it holds events of: {}", named.join(", "))
            }
        ));
    }
    for d in f.duplicates.iter().take(SHOW) {
        progress.line(&match d {
            fairness::Duplicate::TicketAgain { id, ticket } => {
                format!("duplicate: {id} admits ticket {ticket} again")
            }
            fairness::Duplicate::IdentityTwice {
                id,
                client_hash,
                ticket,
                live,
            } => format!(
                "duplicate: {id} admits ticket {ticket} while the same identity ({client_hash}) holds a live admission of {live}"
            ),
        });
    }
    for (ticket, ms) in f.lost.iter().take(SHOW) {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| ms.to_string());
        progress.line(&format!(
            "lost: ticket {ticket}, admitted at {at} by Redis, has no admitted event in the stream"
        ));
    }
    if !f.lost.is_empty() {
        progress.line(
            "lost: if the sale is still running, its newest events may still be in the outbox \
             (admission_outbox_length); audit again once it is empty",
        );
    }
    if f.out_of_order_pairs > 0 {
        progress.line(&format!(
            "inversions: {} pairs admitted against their place while the queue admitted in order",
            f.out_of_order_pairs
        ));
    }
    for m in f.draw_mismatches.iter().take(SHOW) {
        progress.line(&match m.expected {
            Some(seq) => format!(
                "inversion: {} admits pre-queue ticket {} at place {}, its draw gave it {seq}",
                m.id, m.ticket, m.admitted_seq
            ),
            None => format!(
                "inversion: {} admits pre-queue ticket {} before its pre-queue was drawn",
                m.id, m.ticket
            ),
        });
    }
    for d in &f.draws {
        if d.found == d.size {
            progress.line(&format!(
                "draw {}: {} pre-queue fans replayed from the seed",
                d.id, d.size
            ));
        }
    }
    for note in &f.notes {
        progress.line(&format!("note: {note}"));
    }
    if !log.conflicting.is_empty() {
        let ids: Vec<String> = log
            .conflicting
            .iter()
            .take(SHOW)
            .map(|i| i.to_string())
            .collect();
        progress.line(&format!(
            "warning: {} events share an id with a different event (kept the first): {}",
            log.conflicting.len(),
            ids.join(", ")
        ));
    }
    for (why, n) in &log.unreadable {
        progress.line(&format!("warning: {n} × {why}"));
    }
}

fn seconds(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.3} s"))
}

/// The report for people (stdout without `--json`).
fn table(args: &Args, r: &Report) -> String {
    format!(
        "sale `{}` in stream `{}`\n  \
         joined       {}\n  \
         admitted     {}\n  \
         duplicates   {}\n  \
         lost         {}\n  \
         inversions   {}\n  \
         kendall_tau  {}\n  \
         redelivered  {}\n  \
         wait p50     {}\n  \
         wait p99     {}\n",
        args.event,
        args.stream,
        r.joined,
        r.admitted,
        r.duplicates,
        r.lost
            .map_or_else(|| "- (no --redis)".into(), |n| n.to_string()),
        r.inversions,
        r.kendall_tau
            .map_or_else(|| "-".into(), |t| format!("{t:.6} (tau-b)")),
        r.redelivered,
        seconds(r.wait_p50_seconds),
        seconds(r.wait_p99_seconds),
    )
}

/// The one-line summary.
fn summary(args: &Args, r: &Report, failed: bool) -> String {
    format!(
        "{} `{}`: {} joined, {} admitted, {} duplicates, {} lost, {} inversions, tau {}, {} redelivered, wait p50 {} p99 {}",
        if failed { "FAILED" } else { "ok" },
        args.event,
        r.joined,
        r.admitted,
        r.duplicates,
        r.lost.map_or_else(|| "?".into(), |n| n.to_string()),
        r.inversions,
        r.kendall_tau.map_or_else(|| "-".into(), |t| format!("{t:.3}")),
        r.redelivered,
        seconds(r.wait_p50_seconds),
        seconds(r.wait_p99_seconds),
    )
}
