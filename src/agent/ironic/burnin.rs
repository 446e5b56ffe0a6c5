//! The burn-in steps (`burnin_cpu`, `burnin_memory`, `burnin_disk`,
//! `burnin_network`), with ironic-python-agent's `agent_burnin_*`
//! driver_info knobs and defaults (`burnin.py`), done by [`crate::burnin`]
//! instead of stress-ng and fio. Settings are read and refused when the
//! step arrives; the work runs on threads while the job's loop keeps the
//! conductor answered, shows progress and stops the workers on time. The
//! figures go to the log, the step's result and the knob's output file.

use crate::burnin::{cpu, disk, memory, network};
use crate::linux::{blockdev, hardware, inventory};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
pub enum Burnin {
    /// stress-ng --cpu N (0: every CPU) --timeout S.
    Cpu { workers: usize, secs: u64 },
    /// stress-ng --vm N (0: one per CPU) --vm-bytes … --timeout S.
    Memory {
        workers: usize,
        amount: memory::Amount,
        secs: u64,
    },
    /// fio's verified read/write over every disk.
    Disk { plan: disk::Plan },
    /// fio's network job with a partner, both directions.
    Network {
        role: network::Role,
        partner: String,
        runtime_s: u64,
        wait_s: u64,
    },
}

/// One burn-in step as the conductor asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub what: Burnin,
    /// `agent_burnin_*_outputfile`: where the figures are also written.
    pub outputfile: Option<String>,
}

/// A driver_info number (JSON number or a string of digits: driver_info
/// is free-form and operators write both).
fn number(info: &Value, key: &str, default: u64) -> Result<u64, String> {
    match info.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| format!("{key} must be a whole number, not {v}")),
    }
}

/// A duration knob in seconds, bounded (a year) so it never overflows a
/// clock in milliseconds.
fn seconds(info: &Value, key: &str, default: u64) -> Result<u64, String> {
    Ok(number(info, key, default)?.min(365 * 86_400))
}

/// Reads step `name`'s knobs from the node's driver_info.
pub fn parse(name: &str, node: &Value) -> Result<Step, String> {
    let info = &node["driver_info"];
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
    let (what, outputfile) = match name {
        "burnin_cpu" => (
            Burnin::Cpu {
                workers: number(info, "agent_burnin_cpu_cpu", 0)? as usize,
                secs: seconds(info, "agent_burnin_cpu_timeout", 86_400)?,
            },
            text("agent_burnin_cpu_outputfile"),
        ),
        "burnin_memory" => (
            Burnin::Memory {
                workers: number(info, "agent_burnin_vm_vm", 0)? as usize,
                amount: match info.get("agent_burnin_vm_vm-bytes") {
                    None | Some(Value::Null) => memory::Amount::Percent(98),
                    Some(Value::String(s)) => memory::parse_amount(s)?,
                    Some(v) => memory::parse_amount(&v.to_string())?,
                },
                secs: seconds(info, "agent_burnin_vm_timeout", 86_400)?,
            },
            text("agent_burnin_vm_outputfile"),
        ),
        "burnin_disk" => {
            if info
                .get("agent_burnin_fio_disk_smart_test")
                .is_some_and(|v| v.as_bool() == Some(true) || v == "true")
            {
                return Err(
                    "agent_burnin_fio_disk_smart_test: rivet runs no SMART self-tests \
                            (no smartctl); burn the disks in without it, or use \
                            ironic-python-agent for this step"
                        .into(),
                );
            }
            (
                Burnin::Disk {
                    plan: disk::Plan {
                        loops: number(info, "agent_burnin_fio_disk_loops", 4)?.min(1000) as u32,
                        runtime_ms: seconds(info, "agent_burnin_fio_disk_runtime", 0)? * 1000,
                    },
                },
                text("agent_burnin_fio_disk_outputfile"),
            )
        }
        "burnin_network" => {
            let Some(config) = info
                .get("agent_burnin_fio_network_config")
                .filter(|c| !c.is_null())
            else {
                return Err(if info
                    .get("agent_burnin_fio_network_pairing_backend_url")
                    .is_some()
                {
                    "agent_burnin_fio_network_pairing_backend_url: rivet does not pair through a \
                     tooz backend; give each node agent_burnin_fio_network_config \
                     {\"role\": \"writer\"|\"reader\", \"partner\": ADDRESS}"
                } else {
                    "fio (network): dynamic pairing config is missing \
                     agent_burnin_fio_network_pairing_backend_url (rivet pairs only through \
                     agent_burnin_fio_network_config {\"role\", \"partner\"})"
                }
                .into());
            };
            let role = network::Role::parse(config["role"].as_str().unwrap_or(""))?;
            let partner = config["partner"]
                .as_str()
                .filter(|p| !p.is_empty())
                .ok_or("fio (network) failed to find partner")?;
            (
                Burnin::Network {
                    role,
                    partner: partner.to_string(),
                    runtime_s: seconds(info, "agent_burnin_fio_network_runtime", 21_600)?,
                    wait_s: seconds(info, "agent_burnin_fio_network_pairing_timeout", 900)?,
                },
                text("agent_burnin_fio_network_outputfile"),
            )
        }
        other => return Err(format!("no burn-in step {other}")),
    };
    Ok(Step { what, outputfile })
}

/// What a burn-in needs of the job's loop: the transport (the network
/// step's wire, the clock, waits that keep the conductor served) and a
/// place to show progress (jobs.rs gives every job host this).
pub(super) trait Host: crate::net::Transport {
    fn show(&mut self, progress: Value);
}

/// Runs the step; its figures as the step's result.
pub(super) fn run(t: &mut impl Host, step: &Step) -> Result<Value, String> {
    let figures = match &step.what {
        Burnin::Cpu { workers, secs } => {
            let n = workers_or_cpus(*workers);
            log::info!("burnin_cpu: {n} workers for {secs} s");
            let jobs = (0..n)
                .map(|i| move |stop: &AtomicBool| cpu::work(i as u64, stop))
                .collect();
            let rounds = hold(t, "burnin_cpu", *secs, jobs)?;
            let total: u64 = rounds.iter().sum();
            let rate = total as f64 / (*secs).max(1) as f64;
            log::info!(
                "burnin_cpu: {n} workers, {total} rounds in {secs} s ({} rounds/s), every round \
                 as computed first",
                rate as u64
            );
            json!({"workers": n, "seconds": secs, "rounds": rounds, "rounds_per_second": rate as u64})
        }
        Burnin::Memory {
            workers,
            amount,
            secs,
        } => memory_burnin(t, workers_or_cpus(*workers), *amount, *secs)?,
        Burnin::Disk { plan } => disk_burnin(t, *plan)?,
        Burnin::Network {
            role,
            partner,
            runtime_s,
            wait_s,
        } => {
            log::info!(
                "burnin_network: partner {partner}, role is {role:?}, {runtime_s} s each way"
            );
            let both = network::pair(t, *role, partner, runtime_s * 1000, wait_s * 1000)?;
            let mut out = json!({"partner": partner, "port": network::PORT});
            for f in &both {
                log::info!("burnin_network: {f}");
                let key = if f.role == network::Role::Writer {
                    "writer"
                } else {
                    "reader"
                };
                out[key] = json!({"bytes": f.bytes, "seconds": f.ms as f64 / 1000.0,
                                  "mb_per_s": (f.mb_per_s() * 10.0).round() / 10.0});
            }
            out
        }
    };
    if let Some(path) = &step.outputfile {
        let written = Path::new(path)
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(path, figures.to_string()));
        if let Err(e) = written {
            log::warn!("burn-in output file {path}: {e}");
        }
    }
    Ok(figures)
}

fn workers_or_cpus(asked: usize) -> usize {
    match asked {
        0 => (hardware::cpu(Path::new("/proc")).count as usize).max(1),
        n => n.min(1024),
    }
}

/// A worker: runs until the flag, or fails.
type Work<'a> = Box<dyn FnOnce(&AtomicBool) -> Result<u64, String> + Send + 'a>;

/// Runs `jobs` on threads for `secs` while the conductor is served, then
/// stops them; each one's count. The first failure stops all and is the
/// step's error.
fn hold<'a, F>(t: &mut impl Host, name: &str, secs: u64, jobs: Vec<F>) -> Result<Vec<u64>, String>
where
    F: FnOnce(&AtomicBool) -> Result<u64, String> + Send + 'a,
{
    let jobs: Vec<Work<'a>> = jobs.into_iter().map(|j| Box::new(j) as Work<'a>).collect();
    let stop = AtomicBool::new(false);
    let failed = Mutex::new(None::<String>);
    let start = t.now_ms();
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let (stop, failed) = (&stop, &failed);
                s.spawn(move || {
                    let out = job(stop);
                    if let Err(e) = &out {
                        stop.store(true, Ordering::Relaxed);
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e.clone());
                    }
                    out.unwrap_or(0)
                })
            })
            .collect();
        let mut last = start;
        while !stop.load(Ordering::Relaxed) {
            let now = t.now_ms();
            if now >= start + secs * 1000 {
                break;
            }
            if now >= last + 10_000 || now == start {
                last = now;
                t.show(json!({name: format!("{} of {secs} s", (now - start) / 1000)}));
            }
            t.sleep_ms(200);
        }
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(format!("{name}: {e}")),
        None => Ok(counts),
    }
}

fn memory_burnin(
    t: &mut impl Host,
    workers: usize,
    amount: memory::Amount,
    secs: u64,
) -> Result<Value, String> {
    let meminfo =
        std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    let available = hardware::parse_meminfo(&meminfo, "MemAvailable")
        .ok_or("/proc/meminfo has no MemAvailable")?;
    let bytes = memory::bytes_to_test(amount, available)?;
    let per_worker = (bytes / workers as u64) as usize / 8;
    let mut slices = Vec::new();
    for _ in 0..workers {
        let mut words: Vec<u64> = Vec::new();
        words.try_reserve_exact(per_worker).map_err(|_| {
            format!(
                "burnin_memory: cannot take {} MiB for a worker",
                per_worker >> 17
            )
        })?;
        words.resize(per_worker, 0);
        slices.push(words);
    }
    let tested = (per_worker * 8 * workers) as u64;
    log::info!(
        "burnin_memory: {workers} workers on {} MiB of {} MiB available for {secs} s",
        tested >> 20,
        available >> 20
    );
    let jobs = slices
        .into_iter()
        .enumerate()
        .map(|(i, mut words)| {
            move |stop: &AtomicBool| {
                memory::work(&mut words, i as u64, (i * per_worker) as u64, stop)
            }
        })
        .collect();
    let passes = hold(t, "burnin_memory", secs, jobs)?;
    let total: u64 = passes.iter().sum();
    log::info!(
        "burnin_memory: {} MiB written and read back {total} times in all ({} MB/s), no \
         word differed",
        tested >> 20,
        (total * tested / workers as u64 * 2 / 1_000_000 / secs.max(1))
    );
    Ok(
        json!({"workers": workers, "bytes": tested, "available_bytes": available,
              "seconds": secs, "passes": passes}),
    )
}

fn disk_burnin(t: &mut impl Host, plan: disk::Plan) -> Result<Value, String> {
    let mut paths = Vec::new();
    for d in inventory::disks(Path::new("/sys")) {
        let ro = std::fs::read_to_string(format!("/sys/block/{}/ro", d.name))
            .is_ok_and(|v| v.trim() == "1");
        if ro {
            return Err(format!(
                "burnin_disk: /dev/{} is read-only: fio (disk) would fail on it",
                d.name
            ));
        }
        paths.push(format!("/dev/{}", d.name));
    }
    if paths.is_empty() {
        return Err("burnin_disk: no disks".into());
    }
    log::info!(
        "burnin_disk: {} ({} passes{})",
        paths.join(", "),
        plan.loops,
        if plan.runtime_ms > 0 {
            format!(", or as many as fit in {} s", plan.runtime_ms / 1000)
        } else {
            String::new()
        }
    );
    let lines: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let lines = &lines;
                s.spawn(move || {
                    let mut meter = Clock {
                        start: std::time::Instant::now(),
                        path,
                        lines,
                    };
                    let mut dev = blockdev::Disk::open(path, 512)?;
                    let mut buf = crate::stream::AlignedBuf::new(
                        crate::deploy::DEFAULT_BUFFER,
                        crate::io::BlockDevice::logical_block(&dev).max(4096) as usize,
                    );
                    disk::burn(
                        &mut dev,
                        buf.as_mut_slice(),
                        plan,
                        0x5eed + i as u64,
                        &mut meter,
                    )
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            for line in lines.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                t.show(json!({"burnin_disk": line}));
            }
            t.sleep_ms(200);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker failed".into())))
            .collect::<Vec<_>>()
    });
    let mut out = serde_json::Map::new();
    let mut failed = Vec::new();
    for (path, r) in paths.iter().zip(results) {
        match r {
            Ok(f) => {
                log::info!(
                    "burnin_disk {path}: {} passes, {} MiB written at {} MB/s, read back at {} \
                     MB/s, every byte as written",
                    f.passes,
                    f.written >> 20,
                    crate::stream::Fixed(f.write_mb_s(), 1),
                    crate::stream::Fixed(f.read_mb_s(), 1)
                );
                out.insert(
                    path.clone(),
                    json!({"passes": f.passes, "bytes_written": f.written,
                    "write_mb_per_s": (f.write_mb_s() * 10.0).round() / 10.0,
                    "bytes_read": f.read, "read_mb_per_s": (f.read_mb_s() * 10.0).round() / 10.0}),
                );
            }
            Err(e) => {
                log::error!("burnin_disk: {e}");
                failed.push(e);
            }
        }
    }
    if failed.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(format!("fio (disk) failed: {}", failed.join("; ")))
    }
}

/// A disk worker's clock and reports (logged here, shown by the job).
struct Clock<'a> {
    start: std::time::Instant,
    path: &'a str,
    lines: &'a Mutex<Vec<String>>,
}

impl disk::Meter for Clock<'_> {
    fn now_ms(&mut self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    fn report(&mut self, line: &str) {
        log::info!("burnin_disk {}: {line}", self.path);
        let line = format!("{}: {line}", self.path);
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(info: Value) -> Value {
        json!({"driver_info": info})
    }

    #[test]
    fn knobs_and_defaults_are_the_real_agents() {
        let s = parse("burnin_cpu", &node(json!({}))).unwrap();
        assert_eq!(
            s.what,
            Burnin::Cpu {
                workers: 0,
                secs: 86_400
            }
        );
        let s = parse(
            "burnin_cpu",
            &node(json!({"agent_burnin_cpu_cpu": 2,
            "agent_burnin_cpu_timeout": "30", "agent_burnin_cpu_outputfile": "/var/log/cpu.json"})),
        )
        .unwrap();
        assert_eq!(
            s.what,
            Burnin::Cpu {
                workers: 2,
                secs: 30
            }
        );
        assert_eq!(s.outputfile.as_deref(), Some("/var/log/cpu.json"));
        let s = parse("burnin_memory", &node(json!({}))).unwrap();
        assert_eq!(
            s.what,
            Burnin::Memory {
                workers: 0,
                amount: memory::Amount::Percent(98),
                secs: 86_400
            }
        );
        let s = parse(
            "burnin_memory",
            &node(json!({"agent_burnin_vm_vm-bytes": "64M",
            "agent_burnin_vm_vm": 1, "agent_burnin_vm_timeout": 10})),
        )
        .unwrap();
        assert_eq!(
            s.what,
            Burnin::Memory {
                workers: 1,
                amount: memory::Amount::Bytes(64 << 20),
                secs: 10
            }
        );
        let s = parse("burnin_disk", &node(json!({}))).unwrap();
        assert_eq!(
            s.what,
            Burnin::Disk {
                plan: disk::Plan {
                    loops: 4,
                    runtime_ms: 0
                }
            }
        );
        let s = parse(
            "burnin_network",
            &node(json!({"agent_burnin_fio_network_config":
            {"role": "reader", "partner": "10.0.0.7"}, "agent_burnin_fio_network_runtime": 60})),
        )
        .unwrap();
        assert_eq!(
            s.what,
            Burnin::Network {
                role: network::Role::Reader,
                partner: "10.0.0.7".into(),
                runtime_s: 60,
                wait_s: 900
            }
        );
    }

    #[test]
    fn what_rivet_cannot_do_is_refused_by_name_before_any_work() {
        let refused = |step: &str, info: Value| parse(step, &node(info)).unwrap_err();
        assert!(
            refused("burnin_cpu", json!({"agent_burnin_cpu_timeout": "soon"}))
                .contains("agent_burnin_cpu_timeout must be a whole number")
        );
        assert!(
            refused("burnin_memory", json!({"agent_burnin_vm_vm-bytes": "most"}))
                .contains("vm-bytes \"most\"")
        );
        assert!(refused(
            "burnin_disk",
            json!({"agent_burnin_fio_disk_smart_test": true})
        )
        .contains("no SMART self-tests"));
        assert!(refused(
            "burnin_network",
            json!({
            "agent_burnin_fio_network_pairing_backend_url": "etcd3+http://etcd:2379"})
        )
        .contains("tooz backend"));
        assert!(refused("burnin_network", json!({})).contains("missing"));
        assert!(refused(
            "burnin_network",
            json!({"agent_burnin_fio_network_config":
            {"role": "both", "partner": "x"}})
        )
        .contains("unknown role: both"));
        assert!(refused(
            "burnin_network",
            json!({"agent_burnin_fio_network_config":
            {"role": "writer"}})
        )
        .contains("failed to find partner"));
    }
}
