//! `rivet fetch`: download a URL with rivet's own network stack (the same
//! code that runs in the initramfs), for tests and for checking a network.

use super::args::Args;
use rivet::net::client::{Download, Policy};
use rivet::stream::{fill, Fixed, Meter};
use std::io::Write;

const HELP_HEAD: &str = "\
rivet fetch - download with rivet's own TCP/IP over a raw NIC

USAGE:
    rivet fetch --iface NAME [--ip CIDR --gw IP --dns IP] URL --out PATH|-

OPTIONS:
    --out PATH          Where to write the body (- for stdout)
    --timeout SECS      Longest wait for data before reconnecting [default: 60]
    --retries N         Reconnects tolerated in a row [default: 9]
";

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let (url, rest): (Vec<String>, Vec<String>) = {
        let mut urls = Vec::new();
        let mut rest = Vec::new();
        let mut it = argv.into_iter().peekable();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let takes =
                    !name.contains('=') && name != "help" && !super::net::SWITCHES.contains(&name);
                rest.push(a);
                if takes {
                    if let Some(v) = it.next() {
                        rest.push(v);
                    }
                }
            } else {
                urls.push(a);
            }
        }
        (urls, rest)
    };
    let mut opts = super::net::OPTIONS.to_vec();
    opts.extend(["out", "timeout", "retries"]);
    let args = Args::parse(rest, &opts, super::net::SWITCHES)?;
    if args.help {
        print!("{HELP_HEAD}{}", super::net::HELP);
        return Ok(());
    }
    let [url] = &url[..] else {
        return Err("give exactly one URL".into());
    };
    let out_path = args.required("out")?;
    if args.get("network-data").is_none() {
        args.required("iface")?;
    }
    let mut stack = super::net::stack(&args)?.expect("--iface or --network-data checked");
    let started = std::time::Instant::now();
    let mut policy = Policy::default();
    if let Some(t) = args.get("timeout") {
        let secs: u64 = t.parse().map_err(|_| format!("--timeout '{t}': seconds"))?;
        policy.idle_timeout_ms = secs * 1000;
        policy.connect_timeout_ms = secs * 1000;
    }
    if let Some(r) = args.get("retries") {
        policy.retries = r
            .parse()
            .map_err(|_| format!("--retries '{r}': a number"))?;
    }
    let t: &mut (dyn rivet::net::Transport + Send) = &mut stack;
    let mut d = Download::start(t, url, policy).map_err(|e| e.to_string())?;
    let mut out: Box<dyn Write> = if out_path == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out_path).map_err(|e| format!("{out_path}: {e}"))?)
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut meter = Meter::new(0, 5_000, d.total());
    let mut total = 0u64;
    loop {
        let n = fill(&mut d, &mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("{out_path}: {e}"))?;
        total += n as u64;
        if let Some(line) = meter.advance(n as u64, started.elapsed().as_millis() as u64) {
            log::info!("fetch: {line}");
        }
        if n < buf.len() {
            break;
        }
    }
    out.flush().map_err(|e| format!("{out_path}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let (resumes, restarts) = (d.resumes, d.restarts);
    drop(d);
    log::info!(
        "fetched {total} bytes in {} s ({} MB/s), {resumes} resumes, {restarts} restarts, \
         {} frames dropped by the kernel",
        Fixed(secs, 2),
        Fixed(total as f64 / 1e6 / secs.max(1e-9), 1),
        stack.device.kernel_drops()
    );
    Ok(())
}
