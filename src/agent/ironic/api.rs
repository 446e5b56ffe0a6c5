//! The agent API on port 9999, as ironic-python-agent's `api/app.py`
//! answers it: routes, token check, command dispatch, one command at a
//! time. No I/O: requests come in, responses and jobs come out. Jobs (the
//! asynchronous commands) are run by the caller, which reports back with
//! [`Api::finish`]; until then their record says RUNNING.

use super::commands::{CommandResult, Status};
use super::errors::{fault, IpaError, RestError};
use super::steps;
use super::token::AgentToken;
use crate::net::server::{Reply, Request, Response};
use crate::plan::Plan;
use serde_json::{json, Map, Value};

/// What the machine does for the API beyond bookkeeping.
pub trait Host {
    /// Flushes file system buffers (`standby.sync`).
    fn sync(&mut self) -> Result<(), String>;
    /// The console log, packed as the conductor stores it (base64 gzip tar).
    fn system_logs(&mut self) -> Result<String, String>;
}

/// An asynchronous command to run; `id` names its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub work: Work,
}

/// Which of the conductor's step flows a step came in: the keys of its
/// result (`deploy_result`/`clean_result`/`service_result` and `…_step`)
/// and of its version check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Deploy,
    Clean,
    Service,
}

impl StepKind {
    pub fn key(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy",
            StepKind::Clean => "clean",
            StepKind::Service => "service",
        }
    }

    /// The error class a step of this flow fails with.
    pub fn error(self) -> IpaError {
        match self {
            StepKind::Deploy => IpaError::Deployment,
            StepKind::Clean => IpaError::Cleaning,
            StepKind::Service => IpaError::Servicing,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// `deploy.execute_deploy_step` write_image, or `standby.prepare_image`
    /// (`step` is None): image_info, with the config drive folded in,
    /// parsed and checked once, where the command arrived.
    WriteImage {
        plan: Box<Plan>,
        step: Option<Value>,
        node: Value,
        kind: StepKind,
    },
    /// Wipe tables and signatures on every disk (deploy or clean step).
    EraseMetadata {
        step: Value,
        kind: StepKind,
    },
    /// `erase_devices` (secure erase or overwrite) or, `express`,
    /// `erase_devices_express` (NVMe format, else the metadata wipe).
    EraseDevices {
        step: Value,
        kind: StepKind,
        express: bool,
    },
    InstallBootloader {
        params: Value,
    },
    PowerOff,
    Reboot,
    /// `erase_pstore`: the kernel's crash records emptied.
    ErasePstore {
        step: Value,
        kind: StepKind,
    },
    /// `clean_uefi_nvram` with its patterns, compiled when the step came.
    CleanUefiNvram {
        patterns: Vec<crate::boot::pattern::Pattern>,
        step: Value,
        kind: StepKind,
    },
    /// A burn-in step, its knobs read from the node when it came.
    Burnin {
        burnin: super::burnin::Step,
        step: Value,
        kind: StepKind,
    },
    /// `inject_files` (deploy and service): the files, validated and
    /// decoded when the step came.
    InjectFiles {
        files: Vec<super::inject::File>,
        step: Value,
        kind: StepKind,
    },
    /// A RAID step (`create_configuration`, `delete_configuration`,
    /// `apply_configuration`); the node is the API's, as for erase_devices.
    Raid {
        op: RaidOp,
        step: Value,
        kind: StepKind,
    },
    /// `system.lockdown`: answer, then close the API, stop heartbeats,
    /// take every link down and stay up (a node that must never power off).
    Lockdown,
}

/// Which RAID step, with what it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum RaidOp {
    /// The node's `target_raid_config`.
    Create(Value),
    Delete,
    /// `raid_config` and `delete_existing`.
    Apply(Value, bool),
}

/// Why rivet does not do bootc deploys, for both ways a conductor asks.
const BOOTC_REFUSED: &str = "execute_bootc_install: bootc runs the container image's own \
     installer, which needs a container runtime and the image's userland; rivet has neither: \
     deploy bootc images with ironic-python-agent";

/// What the lookup configures of the agent API.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    /// Whether the conductor allows md5 checksums.
    pub md5_enabled: bool,
    /// Which image formats, and whether to inspect them.
    pub image_checks: crate::deploy::format::Checks,
    /// enable_bios_bootloader_install.
    pub bios_bootloader_install: bool,
}

impl Default for LookupConfig {
    fn default() -> LookupConfig {
        LookupConfig {
            md5_enabled: true,
            image_checks: Default::default(),
            bios_bootloader_install: false,
        }
    }
}

/// What an image write leaves for later commands: get_partition_uuids'
/// answer and the disk install_bootloader works on.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenImage {
    pub partition_uuids: Value,
    pub disk: String,
}

pub struct Api {
    commands: Vec<CommandResult>,
    token: Option<AgentToken>,
    started_at: f64,
    /// What the last image write found (`standby.get_partition_uuids`).
    partition_uuids: Option<Value>,
    /// The disk that image went to (`image.install_bootloader` works on it).
    image_disk: Option<String>,
    /// The node as the conductor last sent it (root device hints, boot mode).
    node: Value,
    config: LookupConfig,
    job: Option<Job>,
    rng: u64,
}

const NOT_FOUND: &str = "404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
const NOT_ALLOWED: &str =
    "405 Method Not Allowed: The method is not allowed for the requested URL.";

fn respond(status: u16, v: &Value) -> Response {
    Response::json(status, v.to_string())
}

impl Api {
    /// The lookup's node and configuration.
    pub fn configure(&mut self, node: Value, config: LookupConfig) {
        self.node = node;
        self.config = config;
    }

    /// The node as the conductor last sent it.
    pub fn node(&self) -> &Value {
        &self.node
    }

    pub fn config(&self) -> &LookupConfig {
        &self.config
    }

    /// Keeps what an image write found, for the commands after it.
    pub fn record_image(&mut self, written: WrittenImage) {
        self.partition_uuids = Some(written.partition_uuids);
        self.image_disk = Some(written.disk);
    }

    /// get_partition_uuids' answer and the disk, if an image was written.
    pub fn written_image(&self) -> (Option<&Value>, Option<&str>) {
        (self.partition_uuids.as_ref(), self.image_disk.as_deref())
    }

    pub fn new(token: Option<AgentToken>, started_at: f64, seed: u64) -> Api {
        Api {
            commands: Vec::new(),
            token,
            started_at,
            partition_uuids: None,
            image_disk: None,
            config: LookupConfig::default(),
            node: Value::Null,
            job: None,
            rng: seed | 1,
        }
    }

    fn uuid4(&mut self) -> String {
        let mut b = [0u8; 16];
        for chunk in b.chunks_mut(8) {
            // xorshift64*: ids need to be unique, not secret.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let v = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    pub fn commands(&self) -> &[CommandResult] {
        &self.commands
    }

    /// The next asynchronous command to run, once.
    pub fn take_job(&mut self) -> Option<Job> {
        self.job.take()
    }

    /// Records how a job ended.
    pub fn finish(&mut self, id: &str, outcome: Result<Value, RestError>) {
        if let Some(c) = self.commands.iter_mut().find(|c| c.id == id) {
            match &outcome {
                Ok(_) => log::info!("command {} succeeded", c.name),
                Err(e) => log::error!("command {} failed: {}: {}", c.name, e.message(), e.details),
            }
            c.finish(outcome);
        }
    }

    pub fn handle(&mut self, req: &Request, host: &mut dyn Host) -> Reply {
        let path = req
            .path
            .strip_prefix("/v1")
            .filter(|p| !p.is_empty())
            .unwrap_or(&req.path);
        let path = if req.path == "/v1" || req.path == "/v1/" {
            "/v1/"
        } else {
            path
        };
        let wait = req
            .query_param("wait")
            .is_some_and(|w| w.eq_ignore_ascii_case("true"));
        let root = format!("http://{}", req.header("host").unwrap_or("localhost"));
        let get = req.method == "GET";
        match path {
            "/" if get => Reply::Now(respond(200, &root_doc(&root))),
            "/v1/" if get => Reply::Now(respond(200, &v1_doc(&root))),
            "/status" if get => Reply::Now(respond(
                200,
                &json!({"started_at": self.started_at, "version": crate::VERSION}),
            )),
            "/" | "/v1/" | "/status" => Reply::Now(respond(405, &fault(405, NOT_ALLOWED))),
            _ => match path.strip_prefix("/commands") {
                Some(rest) => {
                    if let Some(refused) = self.refuse_token(req) {
                        return Reply::Now(refused);
                    }
                    self.commands_route(req, rest, wait, host)
                }
                None => Reply::Now(respond(404, &fault(404, NOT_FOUND))),
            },
        }
    }

    fn refuse_token(&self, req: &Request) -> Option<Response> {
        if self.token.as_ref().is_some_and(|t| t.in_query(&req.query)) {
            None
        } else {
            log::warn!(
                "agent API: {} {} refused: {} agent token",
                req.method,
                req.path,
                if req.query_param("agent_token").is_some() {
                    "wrong"
                } else {
                    "missing"
                }
            );
            Some(respond(
                401,
                &fault(401, "401 Unauthorized: Token invalid."),
            ))
        }
    }

    fn commands_route(
        &mut self,
        req: &Request,
        rest: &str,
        wait: bool,
        host: &mut dyn Host,
    ) -> Reply {
        match (req.method.as_str(), rest) {
            ("GET", "" | "/") => {
                let list: Vec<Value> = self.commands.iter().map(CommandResult::to_json).collect();
                Reply::Now(respond(200, &json!({"commands": list})))
            }
            ("POST", "" | "/") => match self.run_command(&req.body, host) {
                Ok(i) if wait && !self.commands[i].is_done() => Reply::Later(i as u64),
                Ok(i) => Reply::Now(respond(200, &self.commands[i].to_json())),
                Err((status, body)) => Reply::Now(respond(status, &body)),
            },
            ("GET", id) => {
                let id = id.trim_start_matches('/');
                match self.commands.iter().position(|c| c.id == id) {
                    Some(i) if wait && !self.commands[i].is_done() => Reply::Later(i as u64),
                    Some(i) => Reply::Now(respond(200, &self.commands[i].to_json())),
                    None => Reply::Now(respond(
                        404,
                        &RestError::not_found("Command Result", id).fault(),
                    )),
                }
            }
            _ => Reply::Now(respond(405, &fault(405, NOT_ALLOWED))),
        }
    }

    /// The answer to a `wait=true` request, once its command is done.
    pub fn resume(&mut self, ticket: u64) -> Option<Response> {
        let c = self.commands.get(ticket as usize)?;
        c.is_done().then(|| respond(200, &c.to_json()))
    }

    /// Runs or starts a command; returns its record's index, or the HTTP
    /// error the real agent answers with.
    fn run_command(&mut self, body: &[u8], host: &mut dyn Host) -> Result<usize, (u16, Value)> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            (
                400,
                fault(
                    400,
                    &format!("400 Bad Request: Failed to decode JSON object: {e}"),
                ),
            )
        })?;
        let (Some(name), Some(Value::Object(params))) =
            (v.get("name").and_then(Value::as_str), v.get("params"))
        else {
            return Err((
                400,
                fault(400, "400 Bad Request: Missing or invalid name or params"),
            ));
        };
        let http = |e: RestError| (e.code(), e.fault());
        let Some((ext, cmd)) = name.split_once('.') else {
            return Err(http(RestError::invalid_command(
                "Command name must be of the form <extension>.<name>",
            )));
        };
        if let Some(last) = self.commands.last() {
            if !last.is_done() {
                log::warn!("agent API: {name} refused, {} is still running", last.name);
                return Err(http(RestError::busy(&last.name)));
            }
        }
        log::info!("agent API: command {name}");
        let known = [
            "clean", "deploy", "image", "log", "standby", "flow", "poll", "rescue", "service",
            "system",
        ];
        if !known.contains(&ext) {
            return Err(http(
                IpaError::RequestedObjectNotFound
                    .with(format!("Extension with id {ext} not found.")),
            ));
        }
        let id = self.uuid4();
        let mut record = CommandResult::running(id.clone(), cmd);
        let work = match (ext, cmd) {
            ("deploy", "get_deploy_steps")
            | ("clean", "get_clean_steps")
            | ("service", "get_service_steps") => {
                self.cache_node(params);
                record.finish(Ok(steps::list(&format!("{ext}_steps"))));
                None
            }
            ("deploy", "execute_deploy_step")
            | ("clean", "execute_clean_step")
            | ("service", "execute_service_step") => {
                self.cache_node(params);
                let kind = match ext {
                    "clean" => StepKind::Clean,
                    "service" => StepKind::Service,
                    _ => StepKind::Deploy,
                };
                match self.step_work(kind, params) {
                    Ok(work) => Some(work),
                    Err(e) => {
                        record.finish(Err(e));
                        None
                    }
                }
            }
            ("standby", "prepare_image") => {
                let info = params.get("image_info").cloned().unwrap_or(Value::Null);
                let cd = params.get("configdrive").cloned();
                // Like the real agent's validator: refused before a record exists.
                let plan = self.check_image_info(info, cd).map_err(http)?;
                Some(Work::WriteImage {
                    plan: Box::new(plan),
                    step: None,
                    node: self.node.clone(),
                    kind: StepKind::Deploy,
                })
            }
            ("standby", "get_partition_uuids") => {
                if self.partition_uuids.is_none() {
                    log::warn!("get_partition_uuids before any image was written");
                }
                record.finish(Ok(self
                    .partition_uuids
                    .clone()
                    .unwrap_or_else(|| json!({}))));
                None
            }
            ("standby", "sync") => {
                record.finish(
                    host.sync()
                        .map(|_| Value::Null)
                        .map_err(RestError::execution),
                );
                None
            }
            ("standby", "power_off") => Some(Work::PowerOff),
            ("standby", "run_image") => Some(Work::Reboot),
            ("system", "lockdown") => Some(Work::Lockdown),
            ("standby", "execute_bootc_install") => {
                return Err(http(RestError::invalid_command(BOOTC_REFUSED)))
            }
            ("rescue", "finalize_rescue") => return Err(http(RestError::invalid_command(
                "rescue.finalize_rescue: rivet has no shell, no login and no userland to rescue \
                     into; rescue a node with ironic-python-agent's ramdisk (rescue_kernel and \
                     rescue_ramdisk in the node's driver_info)",
            ))),
            ("log", "collect_system_logs") => {
                record.finish(
                    host.system_logs()
                        .map(|l| json!({"system_logs": l}))
                        .map_err(RestError::execution),
                );
                None
            }
            ("image", "install_bootloader") => Some(Work::InstallBootloader {
                params: Value::Object(params.clone()),
            }),
            _ => {
                return Err(http(RestError::invalid_command(format!(
                    "Unknown command: {cmd}"
                ))))
            }
        };
        if let Some(work) = work {
            self.job = Some(Job {
                id: id.clone(),
                work,
            });
        }
        self.commands.push(record);
        Ok(self.commands.len() - 1)
    }

    fn cache_node(&mut self, params: &Map<String, Value>) {
        if let Some(node) = params.get("node").filter(|n| n.is_object()) {
            self.node = node.clone();
        }
    }

    fn step_work(
        &mut self,
        kind: StepKind,
        params: &Map<String, Value>,
    ) -> Result<Work, RestError> {
        let version_key = format!("{}_version", kind.key());
        if let Some(v) = params.get(&version_key).filter(|v| !v.is_null()) {
            let ours = steps::versions();
            if *v != ours {
                return Err(IpaError::VersionMismatch.with(format!(
                    "Current versions: {ours}, versions used by ironic: {v}"
                )));
            }
        }
        let step = params.get("step").cloned().unwrap_or(Value::Null);
        let Some(name) = step.get("step").and_then(Value::as_str) else {
            return Err(RestError::execution(format!(
                "Malformed {}_step, no \"step\" key: {step}",
                kind.key()
            )));
        };
        let args = step.get("args").cloned().unwrap_or(json!({}));
        match name {
            // Deploying, and servicing (re-imaging an active node).
            "write_image" if kind != StepKind::Clean => {
                let info = args.get("image_info").cloned().unwrap_or(Value::Null);
                let cd = args.get("configdrive").cloned();
                let plan = self
                    .check_image_info(info, cd)
                    .map_err(|e| kind.error().with(format!("{}: {}", e.message(), e.details)))?;
                Ok(Work::WriteImage {
                    plan: Box::new(plan),
                    step: Some(step),
                    node: self.node.clone(),
                    kind,
                })
            }
            "erase_devices_metadata" => Ok(Work::EraseMetadata { step, kind }),
            "erase_pstore" => Ok(Work::ErasePstore { step, kind }),
            "clean_uefi_nvram" => {
                let invalid = |v: &Value| {
                    IpaError::InvalidCommandParams
                        .with(format!("The match_patterns must be a list of strings: {v}"))
                };
                let patterns: Vec<String> = match args.get("match_patterns") {
                    None | Some(Value::Null) => steps::DEFAULT_NVRAM_PATTERNS
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                    Some(Value::Array(list)) => list
                        .iter()
                        .map(|p| {
                            p.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| invalid(&args["match_patterns"]))
                        })
                        .collect::<Result<_, _>>()?,
                    Some(other) => return Err(invalid(other)),
                };
                let patterns = patterns
                    .iter()
                    .map(|p| crate::boot::pattern::Pattern::compile(p))
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        IpaError::InvalidCommandParams.with(format!("match_patterns: {e}"))
                    })?;
                Ok(Work::CleanUefiNvram {
                    patterns,
                    step,
                    kind,
                })
            }
            // As the real agent: a disk burn-in would destroy an active
            // node's data, so servicing does not offer it.
            "burnin_disk" if kind == StepKind::Service => Err(kind.error().with(
                "burnin_disk destroys the data on every disk: it is a clean step, not a \
                 service step (unprovision the node to burn its disks in)",
            )),
            "burnin_cpu" | "burnin_memory" | "burnin_disk" | "burnin_network" => {
                let burnin = super::burnin::parse(name, &self.node)
                    .map_err(|e| kind.error().with(format!("{name}: {e}")))?;
                Ok(Work::Burnin { burnin, step, kind })
            }
            "execute_bootc_install" => Err(kind.error().with(BOOTC_REFUSED)),
            "inject_files" if kind != StepKind::Clean => {
                let ports = params.get("ports").cloned().unwrap_or(Value::Null);
                let files = super::inject::validate(&self.node, &ports, args.get("files"))
                    .map_err(|e| IpaError::InvalidCommandParams.with(e))?;
                Ok(Work::InjectFiles { files, step, kind })
            }
            "burnin_gpu" => Err(kind.error().with(
                "burnin_gpu: rivet carries no GPU drivers and no gpu-burn; burn GPUs in with \
                 ironic-python-agent's ramdisk built with them",
            )),
            // The RAID interface's steps (Ironic's AgentRAID), software RAID
            // only: what a RAID card needs is the card vendor's manager.
            "create_configuration" if kind == StepKind::Clean => Ok(Work::Raid {
                op: RaidOp::Create(self.node["target_raid_config"].clone()),
                step,
                kind,
            }),
            "delete_configuration" if kind == StepKind::Clean => Ok(Work::Raid {
                op: RaidOp::Delete,
                step,
                kind,
            }),
            "apply_configuration" if kind != StepKind::Clean => {
                let Some(config) = args.get("raid_config").filter(|c| c.is_object()) else {
                    return Err(IpaError::InvalidCommandParams
                        .with("apply_configuration needs a raid_config object"));
                };
                let delete_existing = args
                    .get("delete_existing")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                Ok(Work::Raid {
                    op: RaidOp::Apply(config.clone(), delete_existing),
                    step,
                    kind,
                })
            }
            "erase_devices" | "erase_devices_express" => Ok(Work::EraseDevices {
                express: name == "erase_devices_express",
                step,
                kind,
            }),
            other => Err(IpaError::HardwareManagerMethodNotFound
                .with(format!("Could not find method: {other}"))),
        }
    }

    /// Validates image_info before the disk is touched, as the real agent's
    /// validator does, and folds the config drive argument into it.
    fn check_image_info(
        &self,
        mut info: Value,
        configdrive: Option<Value>,
    ) -> Result<Plan, RestError> {
        let Some(o) = info.as_object_mut() else {
            return Err(RestError::invalid_params("image_info must be an object"));
        };
        for field in ["id", "urls"] {
            if !o.contains_key(field) {
                return Err(RestError::invalid_params(format!(
                    "Image is missing '{field}' field."
                )));
            }
        }
        match configdrive {
            Some(cd) if !cd.is_null() => {
                o.insert("configdrive".into(), cd);
            }
            _ => {}
        }
        let plan = crate::plan::Plan::from_value(&info)
            .map_err(|e| RestError::invalid_params(e.to_string()))?;
        if plan.urls.is_empty() {
            return Err(RestError::invalid_params(
                "Image 'urls' must be a list with at least one element.",
            ));
        }
        if !self.config.md5_enabled
            && matches!(
                plan.checksum,
                crate::plan::Checksum::Value(crate::plan::HashAlgo::Md5, _)
            )
        {
            return Err(RestError::invalid_params("Image checksum is md5, which the conductor has disabled (agent_md5_checksum_enable)"));
        }
        Ok(plan)
    }

    /// Shows `progress` as the running command's result (the conductor
    /// reads results only once a command has ended).
    pub fn set_progress(&mut self, progress: Value) {
        if let Some(c) = self.commands.last_mut() {
            if c.status == Status::Running {
                c.result = Some(progress);
            }
        }
    }

    /// Whether the last command is still running (for logging and tests).
    pub fn busy(&self) -> bool {
        self.commands
            .last()
            .is_some_and(|c| c.status == Status::Running)
    }
}

/// `Handler` for `Stack::serve`: the API plus the machine it runs on.
pub struct Served<'a> {
    pub api: &'a mut Api,
    pub host: &'a mut dyn Host,
}

/// The body a command may carry: execute_deploy_step's configdrive is
/// base64 of up to 64 MiB of gzip (Ironic's limit) inside JSON.
pub const MAX_COMMAND_BODY: usize = 96 << 20;

impl Api {
    /// Large bodies only for the conductor: a command POST carrying the
    /// agent token; everything else gets the server's 1 MiB.
    pub fn body_limit(&self, method: &str, target: &str) -> usize {
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        if method == "POST"
            && path.trim_end_matches('/') == "/v1/commands"
            && self.has_token(target)
        {
            MAX_COMMAND_BODY
        } else {
            crate::net::server::MAX_BODY
        }
    }
}

impl Api {
    /// The target carries this agent's token (`?agent_token=`).
    pub fn has_token(&self, target: &str) -> bool {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        self.token.as_ref().is_some_and(|t| t.in_query(query))
    }
}

impl crate::net::server::Handler for Served<'_> {
    fn handle(&mut self, request: &Request) -> Reply {
        self.api.handle(request, self.host)
    }
    fn body_limit(&mut self, method: &str, target: &str) -> usize {
        self.api.body_limit(method, target)
    }
    fn resume(&mut self, ticket: u64) -> Option<Response> {
        self.api.resume(ticket)
    }
    fn proves(&mut self, _method: &str, target: &str) -> bool {
        self.api.has_token(target)
    }
}

fn link(href: String, rel: &str) -> Value {
    json!({"href": href, "rel": rel})
}

fn version_doc(root: &str) -> Value {
    json!({"id": "v1", "links": [link(format!("{root}/v1/"), "self"),
        {"href": "https://docs.openstack.org/ironic-python-agent", "rel": "describedby", "type": "text/html"}]})
}

fn root_doc(root: &str) -> Value {
    json!({"name": "OpenStack Ironic Python Agent API",
           "description": "Ironic Python Agent is a provisioning agent for OpenStack Ironic (served by rivet)",
           "versions": [version_doc(root)], "default_version": version_doc(root)})
}

fn v1_doc(root: &str) -> Value {
    let mut v = json!({
        "commands": [link(format!("{root}/v1/commands"), "self"), link(format!("{root}/commands"), "bookmark")],
        "status": [link(format!("{root}/v1/status"), "self"), link(format!("{root}/status"), "bookmark")],
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.ironic-python-agent.v1+json"}],
    });
    if let (Some(o), Value::Object(d)) = (v.as_object_mut(), version_doc(root)) {
        o.extend(d);
    }
    v
}
