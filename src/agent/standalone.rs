//! Standalone mode, driven by the kernel command line: `rivet.plan=URL`
//! (Ironic's image_info JSON), `rivet.callback=URL` (where the result is
//! POSTed), `rivet.disk=` (target hint). Every failure is reported — on the
//! console always, to the callback when the network is up. The deploy
//! itself is [`super::session`]'s.

use super::session::{fail, firmware_boot_mode, network, write_plan, Failure, Target};
use crate::cmdline::{Cmdline, EndAction};
use crate::deploy::result;
use crate::linux::packet::LinuxStack;
use crate::linux::sys::boot_seconds;
use crate::net::client::{self, Policy};
use crate::plan::Plan;
use serde_json::{json, Value};

/// The `rivet.*` keys standalone mode reads, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `rivet.plan=`: the plan (Ironic's image_info JSON) to deploy.
    pub plan_url: String,
    /// `rivet.callback=`: where the result (or the failure) is POSTed.
    pub callback: Option<String>,
    /// `rivet.disk=`: the target disk hint when the plan names none.
    pub disk: Option<String>,
    /// `rivet.insecure=1`: https without checking certificates.
    pub insecure: bool,
}

impl Params {
    /// None without `rivet.plan=`: standalone mode is not asked for.
    pub fn from_cmdline(c: &Cmdline) -> Option<Params> {
        Some(Params {
            plan_url: c.rivet.get("rivet.plan")?.clone(),
            callback: c.rivet.get("rivet.callback").cloned(),
            disk: c.rivet.get("rivet.disk").cloned(),
            insecure: c
                .rivet
                .get("rivet.insecure")
                .is_some_and(|v| crate::cmdline::truthy(v)),
        })
    }
}

fn deploy_from(
    params: &Params,
    cmdline: &Cmdline,
    stack: &mut Option<LinuxStack>,
    after: &mut Option<EndAction>,
    notes: &mut Vec<String>,
) -> Result<Value, Failure> {
    let s = stack.insert(
        network(cmdline, params.insecure, notes)
            .map_err(fail("network"))?
            .0,
    );
    let text =
        // The trait object: the client's one copy (see session::write_plan).
        client::get(s as &mut (dyn crate::net::Transport + Send), &params.plan_url, 1 << 20, Policy::default()).map_err(|e| Failure {
            step: "plan",
            error: e.to_string(),
        })?;
    let plan = Plan::from_json(&text).map_err(|e| Failure {
        step: "plan",
        error: e.to_string(),
    })?;
    *after = plan.after;
    let hint = plan.target_disk.clone().or(params.disk.clone());
    let boot_mode = plan.boot_mode.unwrap_or_else(firmware_boot_mode);
    let written = write_plan(
        s,
        plan,
        Target::Hint(hint.as_deref()),
        boot_mode,
        Default::default(),
    )?;
    let mut v = result::to_json(&written.outcome, &written.disk);
    v["status"] = json!("succeeded");
    v["image_url"] = json!(written.url);
    Ok(v)
}

/// Runs standalone mode if the command line asks for it. Returns the end
/// action the plan asked for, if any.
pub fn run(cmdline: &Cmdline) -> Option<EndAction> {
    let Some(params) = Params::from_cmdline(cmdline) else {
        log::info!("no rivet.plan on the command line: nothing to deploy");
        return None;
    };
    let callback = params.callback.as_ref();
    let mut stack = None;
    let mut after = None;
    let mut notes = Vec::new();
    let mut report = match deploy_from(&params, cmdline, &mut stack, &mut after, &mut notes) {
        Ok(v) => {
            log::info!("deploy succeeded: root uuid {}", v["root uuid"]);
            v
        }
        Err(f) => {
            log::error!("deploy failed in step {}: {}", f.step, f.error);
            json!({"status": "failed", "step": f.step, "error": f.error})
        }
    };
    if !notes.is_empty() {
        report["warnings"] = json!(notes);
    }
    report["rivet_version"] = json!(crate::VERSION);
    report["boot_to_report_seconds"] = json!((boot_seconds() * 1000.0).round() / 1000.0);
    let body = serde_json::to_vec(&report).unwrap_or_default();
    log::info!("result: {}", String::from_utf8_lossy(&body));
    match (callback, stack.as_mut()) {
        (Some(url), Some(s)) => match client::post_json(
            s,
            url,
            &body,
            Policy {
                retries: 5,
                ..Policy::default()
            },
        ) {
            Ok((status, _)) if (200..300).contains(&status) => {
                log::info!("result posted to {url} ({status})")
            }
            Ok((status, _)) => log::error!("callback {url} answered {status}"),
            Err(e) => log::error!("callback failed: {e}"),
        },
        (Some(url), None) => log::error!("cannot post the result to {url}: the network is not up"),
        (None, _) => {}
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_come_from_the_rivet_keys() {
        let c = crate::cmdline::Cmdline::parse(
            "console=ttyS0 rivet.plan=http://h/p.json rivet.disk=serial=S1 rivet.insecure=1",
        );
        assert_eq!(
            Params::from_cmdline(&c),
            Some(Params {
                plan_url: "http://h/p.json".into(),
                callback: None,
                disk: Some("serial=S1".into()),
                insecure: true,
            })
        );
        let none = crate::cmdline::Cmdline::parse("console=ttyS0 rivet.callback=http://h/cb");
        assert_eq!(Params::from_cmdline(&none), None);
    }
}
