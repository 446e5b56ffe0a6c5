//! The agent API driven with the requests Ironic's `agent_client.py`
//! sends, checked against what ironic-python-agent 13 answers.

use super::api::{Api, Host, RaidOp, StepKind, Work};
use super::errors::RestError;
use super::token::AgentToken;
use crate::net::server::{Reply, Request, Response};
use serde_json::{json, Value};

const TOKEN: &str = "Vk3fQ0n8c5S5tYwq1VxKXb2aUQwJgq2x0dI8wYkq0bA";

struct TestHost {
    syncs: u32,
}

impl Host for TestHost {
    fn sync(&mut self) -> Result<(), String> {
        self.syncs += 1;
        Ok(())
    }
    fn system_logs(&mut self) -> Result<String, String> {
        Ok("H4sIAAAA".into())
    }
}

fn req(method: &str, target: &str, body: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: vec![("host".into(), "10.0.2.15:9999".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn now(api: &mut Api, host: &mut TestHost, method: &str, target: &str, body: &str) -> (u16, Value) {
    match api.handle(&req(method, target, body), host) {
        Reply::Now(Response { status, body, .. }) => {
            (status, serde_json::from_slice(&body).unwrap())
        }
        Reply::Later(t) => panic!("deferred ({t}) {method} {target}"),
    }
}

fn post(api: &mut Api, host: &mut TestHost, wait: bool, name: &str, params: Value) -> (u16, Value) {
    let body = json!({"name": name, "params": params}).to_string();
    now(
        api,
        host,
        "POST",
        &format!("/v1/commands/?wait={wait}&agent_token={TOKEN}"),
        &body,
    )
}

/// `GET /v1/commands/` with the token: the command list.
fn commands(api: &mut Api, host: &mut TestHost) -> (u16, Value) {
    now(
        api,
        host,
        "GET",
        &format!("/v1/commands/?agent_token={TOKEN}"),
        "",
    )
}

fn image_info() -> Value {
    json!({"id": "c5a1", "urls": ["http://10.0.2.2:8080/root.img"], "disk_format": "raw",
           "stream_raw_images": true, "image_type": "partition", "root_mb": 64, "swap_mb": 0,
           "ephemeral_mb": 0, "ephemeral_format": null, "preserve_ephemeral": false,
           "os_hash_algo": "sha256", "os_hash_value": "ab".repeat(32), "node_uuid": "n1",
           "deploy_boot_mode": "bios", "boot_option": "local"})
}

fn setup() -> (Api, TestHost) {
    (
        Api::new(Some(AgentToken::new(TOKEN)), 1764000000.5, 42),
        TestHost { syncs: 0 },
    )
}

#[test]
fn status_routes_need_no_token_command_routes_refuse_missing_or_wrong_ones() {
    let (mut api, mut host) = setup();
    let (s, root) = now(&mut api, &mut host, "GET", "/", "");
    assert_eq!(
        (s, root["name"].as_str()),
        (200, Some("OpenStack Ironic Python Agent API"))
    );
    assert_eq!(root["default_version"]["id"], "v1");
    let (s, st) = now(&mut api, &mut host, "GET", "/v1/status", "");
    assert_eq!((s, st["started_at"].as_f64()), (200, Some(1764000000.5)));
    assert_eq!(now(&mut api, &mut host, "GET", "/v1/", "").1["id"], "v1");
    let refused = json!({"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."});
    for target in [
        "/v1/commands/",
        "/v1/commands/?agent_token=wrong",
        "/v1/commands/?agent_token=",
        &format!("/v1/commands/?agent_token={TOKEN}x"),
    ] {
        assert_eq!(
            now(&mut api, &mut host, "GET", target, ""),
            (401, refused.clone()),
            "{target}"
        );
    }
    let body = json!({"name": "standby.sync", "params": {}}).to_string();
    assert_eq!(
        now(
            &mut api,
            &mut host,
            "POST",
            "/v1/commands/?wait=true",
            &body
        ),
        (401, refused.clone())
    );
    assert_eq!(host.syncs, 0, "a refused command does not run");
    assert_eq!(
        commands(&mut api, &mut host),
        (200, json!({"commands": []}))
    );
    // An agent without a token refuses every command route.
    let mut tokenless = Api::new(None, 0.0, 1);
    assert_eq!(
        now(
            &mut tokenless,
            &mut host,
            "GET",
            "/v1/commands/?agent_token=",
            ""
        )
        .0,
        401
    );
    assert_eq!(now(&mut api, &mut host, "GET", "/v2/nothing", "").0, 404);
}

#[test]
fn malformed_requests_get_the_real_agents_errors() {
    let (mut api, mut host) = setup();
    let t = format!("/v1/commands/?wait=true&agent_token={TOKEN}");
    let (s, f) = now(&mut api, &mut host, "POST", &t, "{not json");
    assert_eq!(s, 400);
    assert!(
        f["faultstring"]
            .as_str()
            .unwrap()
            .starts_with("400 Bad Request: Failed to decode JSON object: "),
        "{f}"
    );
    for body in [
        json!({"name": "standby.sync"}),
        json!({"params": {}}),
        json!({"name": "standby.sync", "params": []}),
    ] {
        assert_eq!(
            now(&mut api, &mut host, "POST", &t, &body.to_string()),
            (
                400,
                json!({"faultcode": "Client", "faultstring": "400 Bad Request: Missing or invalid name or params"})
            )
        );
    }
    assert_eq!(
        post(&mut api, &mut host, true, "standby.fly", json!({})),
        (
            400,
            json!({"faultcode": "Client", "faultstring": "Invalid command: Unknown command: fly"})
        )
    );
    assert_eq!(
        post(&mut api, &mut host, true, "nodot", json!({})).1["faultstring"],
        "Invalid command: Command name must be of the form <extension>.<name>"
    );
    assert_eq!(
        post(&mut api, &mut host, true, "warp.drive", json!({})),
        (
            404,
            json!({"faultcode": "Client", "faultstring": "Not found: Extension with id warp not found."})
        )
    );
    let (s, f) = post(
        &mut api,
        &mut host,
        false,
        "standby.prepare_image",
        json!({"image_info": {"urls": ["http://a/b"]}}),
    );
    assert_eq!(
        (s, f["faultstring"].as_str()),
        (
            400,
            Some("Invalid command parameters: Image is missing 'id' field.")
        )
    );
    assert!(
        api.commands().is_empty(),
        "refused commands leave no record"
    );
    assert_eq!(
        now(
            &mut api,
            &mut host,
            "GET",
            &format!("/v1/commands/nope?agent_token={TOKEN}"),
            ""
        ),
        (
            404,
            json!({"faultcode": "Client", "faultstring": "Not found: Command Result with id nope not found."})
        )
    );
}

#[test]
fn ironic_deploy_flow_write_image_runs_as_a_job_and_busy_is_409() {
    let (mut api, mut host) = setup();
    let node = json!({"uuid": "n1", "instance_info": {"root_device": {"name": "/dev/vdb"}}});
    let (s, steps) = post(
        &mut api,
        &mut host,
        true,
        "deploy.get_deploy_steps",
        json!({"node": node, "ports": []}),
    );
    assert_eq!(
        (
            s,
            steps["command_status"].as_str(),
            steps["command_name"].as_str()
        ),
        (200, Some("SUCCEEDED"), Some("get_deploy_steps"))
    );
    let result = &steps["command_result"];
    let version = result["hardware_manager_version"].clone();
    let listed: Vec<&str> = result["deploy_steps"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|l| l.as_array().unwrap())
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"write_image"), "{listed:?}");
    assert_eq!(
        api.node()["instance_info"]["root_device"]["name"],
        "/dev/vdb"
    );

    let step = json!({"interface": "deploy", "step": "write_image", "priority": 80,
                      "args": {"image_info": image_info(), "configdrive": "H4sI"}});
    let (s, started) = post(
        &mut api,
        &mut host,
        false,
        "deploy.execute_deploy_step",
        json!({"step": step, "node": node, "ports": [], "deploy_version": version}),
    );
    assert_eq!(
        (s, started["command_status"].as_str()),
        (200, Some("RUNNING"))
    );
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    let job = api.take_job().expect("a job");
    assert_eq!(job.id, id);
    let Work::WriteImage {
        plan,
        step: Some(echo),
        ..
    } = &job.work
    else {
        panic!("{job:?}")
    };
    assert_eq!(
        plan.configdrive.as_deref(),
        Some("H4sI"),
        "configdrive arg folded into image_info"
    );
    assert_eq!(echo, &step);

    assert_eq!(
        post(&mut api, &mut host, true, "standby.sync", json!({})),
        (
            409,
            json!({"faultcode": "Client", "faultstring": "Agent is busy: executing command execute_deploy_step"})
        )
    );
    // wait=true on the running command is answered when it ends.
    let waiting = api.handle(
        &req(
            "GET",
            &format!("/v1/commands/{id}?wait=true&agent_token={TOKEN}"),
            "",
        ),
        &mut host,
    );
    let Reply::Later(ticket) = waiting else {
        panic!("{waiting:?}")
    };
    assert!(api.resume(ticket).is_none());
    api.finish(&id, Ok(json!({"deploy_result": {"result": "prepare_image: image (c5a1) written to device /dev/vdb root_uuid=u"},
                              "deploy_step": step})));
    let done: Value = serde_json::from_slice(&api.resume(ticket).unwrap().body).unwrap();
    assert_eq!(done["command_status"], "SUCCEEDED");
    assert_eq!(done["command_result"]["deploy_step"], step);

    api.record_image(super::api::WrittenImage {
        partition_uuids: json!({"root uuid": "u", "partitions": {"root": "/dev/vdb1"}}),
        disk: "/dev/vdb".into(),
    });
    let (_, uuids) = post(
        &mut api,
        &mut host,
        true,
        "standby.get_partition_uuids",
        json!({}),
    );
    assert_eq!(uuids["command_result"]["root uuid"], "u");
    let (_, list) = commands(&mut api, &mut host);
    let names: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "get_deploy_steps",
            "execute_deploy_step",
            "get_partition_uuids"
        ]
    );
    assert_eq!(
        post(&mut api, &mut host, true, "standby.sync", json!({})).1["command_status"],
        "SUCCEEDED"
    );
    assert_eq!(host.syncs, 1);
}

#[test]
fn bad_steps_fail_as_records_not_as_http_errors() {
    let (mut api, mut host) = setup();
    let mut info = image_info();
    info["os_hash_value"] = json!("zz");
    let step = json!({"interface": "deploy", "step": "write_image", "args": {"image_info": info}});
    let (s, r) = post(
        &mut api,
        &mut host,
        false,
        "deploy.execute_deploy_step",
        json!({"step": step, "node": {}, "ports": []}),
    );
    assert_eq!(
        (
            s,
            r["command_status"].as_str(),
            r["command_error"]["type"].as_str()
        ),
        (200, Some("FAILED"), Some("DeploymentError"))
    );
    assert!(
        r["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("os_hash_value"),
        "{r}"
    );
    assert!(api.take_job().is_none(), "nothing runs");
    let (_, r) = post(
        &mut api,
        &mut host,
        false,
        "deploy.execute_deploy_step",
        json!({"step": {"interface": "deploy", "step": "write_image", "args": {}}, "node": {}, "ports": [], "deploy_version": {"other": "1"}}),
    );
    assert_eq!(r["command_status"], "CLEAN_VERSION_MISMATCH");
    let (_, r) = post(
        &mut api,
        &mut host,
        false,
        "clean.execute_clean_step",
        json!({"step": {"interface": "deploy", "step": "burn_raid_controller", "priority": 10}, "node": {}, "ports": []}),
    );
    assert_eq!(r["command_error"]["type"], "HardwareManagerMethodNotFound");
    let (_, r) = post(
        &mut api,
        &mut host,
        false,
        "clean.execute_clean_step",
        json!({"step": {"interface": "deploy", "step": "erase_devices_metadata", "priority": 99}, "node": {}, "ports": []}),
    );
    assert_eq!(r["command_status"], "RUNNING");
    let job = api.take_job().unwrap();
    assert!(matches!(
        job.work,
        Work::EraseMetadata {
            kind: StepKind::Clean,
            ..
        }
    ));
    api.finish(&job.id, Err(RestError::cleaning("disk vda: I/O error")));
    let (_, list) = commands(&mut api, &mut host);
    assert_eq!(
        list["commands"][3]["command_error"]["message"],
        "Clean step failed"
    );
    // erase_devices runs as a job whose progress shows while it runs.
    let (_, r) = post(
        &mut api,
        &mut host,
        false,
        "clean.execute_clean_step",
        json!({"step": {"interface": "deploy", "step": "erase_devices", "priority": 10}, "node": {}, "ports": []}),
    );
    assert_eq!(r["command_status"], "RUNNING");
    let job = api.take_job().unwrap();
    assert!(matches!(
        job.work,
        Work::EraseDevices {
            kind: StepKind::Clean,
            express: false,
            ..
        }
    ));
    api.set_progress(json!({"erase_progress": {"/dev/vda": "pass 1/2"}}));
    let (_, list) = commands(&mut api, &mut host);
    assert_eq!(list["commands"][4]["command_status"], "RUNNING");
    assert_eq!(
        list["commands"][4]["command_result"]["erase_progress"]["/dev/vda"],
        "pass 1/2"
    );
    api.finish(&job.id, Ok(json!({"clean_result": {"/dev/vda": null}})));
    // The conductor may disable md5.
    api.configure(
        api.node().clone(),
        super::api::LookupConfig {
            md5_enabled: false,
            ..Default::default()
        },
    );
    let mut info = image_info();
    info.as_object_mut().unwrap().remove("os_hash_algo");
    info.as_object_mut().unwrap().remove("os_hash_value");
    info["checksum"] = json!("d41d8cd98f00b204e9800998ecf8427e");
    let (s, f) = post(
        &mut api,
        &mut host,
        false,
        "standby.prepare_image",
        json!({"image_info": info}),
    );
    assert_eq!(s, 400);
    assert!(f["faultstring"].as_str().unwrap().contains("md5"), "{f}");
}

#[test]
fn only_the_conductor_may_send_large_commands() {
    let token = "t".repeat(43);
    let api = Api::new(Some(AgentToken::new(token.clone())), 0.0, 1);
    let cmd = format!("/v1/commands/?wait=true&agent_token={token}");
    assert_eq!(api.body_limit("POST", &cmd), super::api::MAX_COMMAND_BODY);
    assert_eq!(
        api.body_limit("POST", "/v1/commands?agent_token=wrong"),
        crate::net::server::MAX_BODY
    );
    assert_eq!(
        api.body_limit("POST", "/v1/commands/"),
        crate::net::server::MAX_BODY
    );
    assert_eq!(api.body_limit("GET", &cmd), crate::net::server::MAX_BODY);
    assert_eq!(
        api.body_limit("POST", &format!("/v1/other?agent_token={token}")),
        crate::net::server::MAX_BODY
    );
    // Through the connection: a 2 MiB body is read when the limit says so.
    let body = vec![b' '; 2 << 20];
    let head = format!(
        "POST {cmd} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut conn = crate::net::server::Conn::new();
    let mut limit = |m: &str, t: &str| api.body_limit(m, t);
    assert!(conn.feed_limited(head.as_bytes(), &mut limit).is_none());
    match conn.feed_limited(&body, &mut limit) {
        Some(crate::net::server::Event::Request(r)) => assert_eq!(r.body.len(), 2 << 20),
        _ => panic!("a conductor's large command was not read"),
    }
}

/// Issue 31: system.lockdown, as the conductor sends it for a node with
/// disable_power_off (after standby.sync, wait=false): accepted as a job
/// the serving loop ends with (the lockdown itself is in the QEMU test);
/// rescue.finalize_rescue refused, saying why and what to use.
#[test]
fn lockdown_is_a_job_and_rescue_is_refused_by_reason() {
    let (mut api, mut host) = setup();
    let (s, started) = post(&mut api, &mut host, false, "system.lockdown", json!({}));
    assert_eq!(
        (s, started["command_name"].as_str()),
        (200, Some("lockdown"))
    );
    assert_eq!(started["command_status"], "RUNNING");
    let job = api.take_job().expect("a job");
    assert_eq!(job.work, Work::Lockdown);
    let (mut api, mut host) = setup();
    let (s, f) = post(
        &mut api,
        &mut host,
        true,
        "rescue.finalize_rescue",
        json!({"rescue_password": "x"}),
    );
    assert_eq!(s, 400);
    let why = f["faultstring"].as_str().unwrap();
    assert!(
        why.starts_with("Invalid command: rescue.finalize_rescue: rivet has no shell"),
        "{why}"
    );
    assert!(why.contains("rescue_ramdisk"), "{why}");
    assert!(api.take_job().is_none());
}

/// `<flow>.get_<flow>_steps`: rivet's manager's steps and the version.
fn steps_of(api: &mut Api, host: &mut TestHost, flow: &str) -> (Value, Value) {
    let (_, r) = post(
        api,
        host,
        true,
        &format!("{flow}.get_{flow}_steps"),
        json!({"node": {}, "ports": []}),
    );
    let res = &r["command_result"];
    (
        res[format!("{flow}_steps")]["RivetHardwareManager"].clone(),
        res["hardware_manager_version"].clone(),
    )
}

/// `<flow>.execute_<flow>_step` with `step` (and `more` params): the answer.
fn execute(api: &mut Api, host: &mut TestHost, flow: &str, step: Value, more: Value) -> Value {
    let mut params = json!({"step": step, "node": {}, "ports": []});
    params
        .as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    post(
        api,
        host,
        false,
        &format!("{flow}.execute_{flow}_step"),
        params,
    )
    .1
}

/// clean_uefi_nvram as the conductor asks for it (issue 31): listed for
/// cleaning and deploying with ironic-python-agent's argsinfo; patterns
/// compiled when the step arrives, refused with the real agent's words.
#[test]
fn clean_uefi_nvram_is_offered_and_its_patterns_checked_when_the_step_comes() {
    let (mut api, mut host) = setup();
    let (steps, _) = steps_of(&mut api, &mut host, "clean");
    let nvram = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "clean_uefi_nvram")
        .unwrap();
    assert_eq!(nvram["priority"], 0);
    assert!(nvram["argsinfo"]["match_patterns"]["description"]
        .as_str()
        .unwrap()
        .contains(r#"["^HD\(", "shim.*\.efi", "grub.*\.efi"]"#));
    let mut nvram_step = |args: Value| {
        let step =
            json!({"interface": "deploy", "step": "clean_uefi_nvram", "priority": 0, "args": args});
        execute(&mut api, &mut host, "clean", step, json!({}))
    };
    let r = nvram_step(json!({"match_patterns": "shim"}));
    assert_eq!(
        r["command_error"]["type"], "InvalidCommandParamsError",
        "{r}"
    );
    assert!(
        r["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("The match_patterns must be a list of strings: \"shim\""),
        "{r}"
    );
    let r = nvram_step(json!({"match_patterns": ["(shim|grub)"]}));
    assert!(
        r["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("a group is not supported"),
        "{r}"
    );
    let r = nvram_step(json!({}));
    assert_eq!(r["command_status"], "RUNNING");
    let Work::CleanUefiNvram {
        patterns,
        kind: StepKind::Clean,
        ..
    } = api.take_job().unwrap().work
    else {
        panic!("not the step")
    };
    assert_eq!(patterns.len(), 3, "the defaults");
}

/// Servicing (issue 31): the conductor asks service.get_service_steps and
/// runs write_image through service.execute_service_step (a re-image of an
/// active node): the same job, its result under service_result and
/// service_step, its version checked under service_version, a bad
/// image_info a ServicingError.
#[test]
fn service_steps_reimage_through_the_same_job() {
    let (mut api, mut host) = setup();
    let (steps, version) = steps_of(&mut api, &mut host, "service");
    assert!(steps.as_array().unwrap().contains(
        &json!({"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false})
    ));
    let step = json!({"step": "write_image", "interface": "deploy", "priority": 0, "args": {"image_info": image_info()}});
    let old = json!({"service_version": {"rivet_hardware_manager": "0.0"}});
    let r = execute(&mut api, &mut host, "service", step.clone(), old);
    assert_eq!(r["command_error"]["type"], "VersionMismatch", "{r}");
    let r = execute(
        &mut api,
        &mut host,
        "service",
        step,
        json!({"service_version": version}),
    );
    assert_eq!(r["command_status"], "RUNNING", "{r}");
    let job = api.take_job().unwrap();
    assert!(
        matches!(
            job.work,
            Work::WriteImage {
                kind: StepKind::Service,
                ..
            }
        ),
        "{job:?}"
    );
    let bad = json!({"step": "write_image", "interface": "deploy", "priority": 0, "args": {"image_info": {"urls": ["http://a/b"]}}});
    api.finish(&job.id, Ok(json!({})));
    let r = execute(&mut api, &mut host, "service", bad, json!({}));
    assert_eq!(r["command_error"]["type"], "ServicingError", "{r}");
}

/// Burn-in (issue 31): offered as the real agent offers it (disks in
/// cleaning only, never GPU), the node's driver_info read when the step
/// comes, what rivet cannot do refused there with the flow's error class.
#[test]
fn burnin_steps_are_offered_and_read_when_they_come_and_bootc_is_refused() {
    let (mut api, mut host) = setup();
    let names = |steps: &Value| -> Vec<String> {
        steps
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["step"].as_str().filter(|n| n.starts_with("burnin")))
            .map(str::to_string)
            .collect()
    };
    let (clean, version) = steps_of(&mut api, &mut host, "clean");
    assert_eq!(
        names(&clean),
        [
            "burnin_cpu",
            "burnin_memory",
            "burnin_disk",
            "burnin_network"
        ]
    );
    assert!(clean
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| names(&json!([s])).len() == 1)
        .all(|s| s["priority"] == 0 && s["abortable"] == true));
    let (service, _) = steps_of(&mut api, &mut host, "service");
    assert_eq!(
        names(&service),
        ["burnin_cpu", "burnin_memory", "burnin_network"]
    );
    let node = json!({"driver_info": {"agent_burnin_cpu_timeout": 5, "agent_burnin_cpu_cpu": 1}});
    let step = json!({"step": "burnin_cpu", "interface": "deploy", "priority": 0});
    let r = execute(
        &mut api,
        &mut host,
        "clean",
        step,
        json!({"node": node, "clean_version": version}),
    );
    assert_eq!(r["command_status"], "RUNNING", "{r}");
    let job = api.take_job().unwrap();
    let Work::Burnin { burnin, kind, .. } = &job.work else {
        panic!("{job:?}")
    };
    assert_eq!(*kind, StepKind::Clean);
    assert_eq!(
        burnin.what,
        crate::agent::ironic::burnin::Burnin::Cpu {
            workers: 1,
            secs: 5
        }
    );
    api.finish(&job.id, Ok(json!({})));
    for (flow, step, more, class, says) in [
        (
            "service",
            "burnin_disk",
            json!({}),
            "ServicingError",
            "destroys the data",
        ),
        (
            "clean",
            "burnin_gpu",
            json!({}),
            "CleaningError",
            "no GPU drivers",
        ),
        (
            "deploy",
            "execute_bootc_install",
            json!({}),
            "DeploymentError",
            "container runtime",
        ),
        (
            "clean",
            "burnin_disk",
            json!({"node": {"driver_info": {"agent_burnin_fio_disk_smart_test": true}}}),
            "CleaningError",
            "SMART",
        ),
    ] {
        let error = refused_step(&mut api, &mut host, flow, json!({"step": step}), more);
        assert_eq!(error["type"], class, "{error}");
        assert!(error["details"].as_str().unwrap().contains(says), "{error}");
    }
}

/// The command_error of `<flow>.execute_<flow>_step` with `step` (an
/// interface and priority added), which must fail.
fn refused_step(
    api: &mut Api,
    host: &mut TestHost,
    flow: &str,
    mut step: Value,
    more: Value,
) -> Value {
    step["interface"] = json!("deploy");
    step["priority"] = json!(0);
    let r = execute(api, host, flow, step, more);
    assert_eq!(r["command_status"], "FAILED", "{r}");
    r["command_error"].clone()
}

/// inject_files (issue 31): offered for deploying and servicing, never in
/// cleaning; its files validated when the step comes, with the real
/// agent's error class.
#[test]
fn inject_files_is_offered_for_deploy_and_service_and_checked_on_arrival() {
    let (mut api, mut host) = setup();
    for (flow, offered) in [("deploy", true), ("service", true), ("clean", false)] {
        let (steps, _) = steps_of(&mut api, &mut host, flow);
        let has = steps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "inject_files");
        assert_eq!(has, offered, "{flow}: {steps}");
    }
    let step = json!({"step": "inject_files", "interface": "deploy", "priority": 0,
        "args": {"files": [{"path": "/etc/motd", "content": "aGkK", "mode": 0o644}]}});
    let r = execute(&mut api, &mut host, "service", step, json!({}));
    assert_eq!(r["command_status"], "RUNNING", "{r}");
    let job = api.take_job().unwrap();
    let Work::InjectFiles { files, kind, .. } = &job.work else {
        panic!("{job:?}")
    };
    assert_eq!((files.len(), *kind), (1, StepKind::Service));
    api.finish(&job.id, Ok(json!({})));
    let bad = json!({"step": "inject_files", "args": {"files": [{"path": "/motd"}]}});
    let error = refused_step(&mut api, &mut host, "deploy", bad, json!({}));
    assert_eq!(error["type"], "InvalidCommandParamsError", "{error}");
    assert!(
        error["details"]
            .as_str()
            .unwrap()
            .contains("requires \"partition\""),
        "{error}"
    );
}

/// Software RAID (issue 32): delete/create offered in cleaning on the RAID
/// interface, apply in deploying and servicing with its argsinfo; the
/// node's target_raid_config rides with the job; apply without a
/// raid_config object is refused with the real agent's error class.
#[test]
fn raid_steps_are_offered_per_flow_and_carry_the_configuration() {
    let (mut api, mut host) = setup();
    for (flow, names) in [
        (
            "clean",
            vec!["delete_configuration", "create_configuration"],
        ),
        ("deploy", vec!["apply_configuration"]),
        ("service", vec!["apply_configuration"]),
    ] {
        let (steps, _) = steps_of(&mut api, &mut host, flow);
        let raid: Vec<&Value> = steps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["interface"] == "raid")
            .collect();
        let listed: Vec<&str> = raid.iter().map(|s| s["step"].as_str().unwrap()).collect();
        assert_eq!(listed, names, "{flow}: {steps}");
        assert!(raid.iter().all(|s| s["priority"] == 0), "{flow}: {steps}");
    }
    let (steps, _) = steps_of(&mut api, &mut host, "deploy");
    let apply = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "apply_configuration")
        .unwrap();
    assert_eq!(apply["argsinfo"]["raid_config"]["required"], true);
    assert_eq!(apply["argsinfo"]["delete_existing"]["required"], false);

    let config =
        json!({"logical_disks": [{"size_gb": "MAX", "raid_level": "1", "controller": "software"}]});
    let step = json!({"step": "create_configuration", "interface": "raid", "priority": 0});
    let node = json!({"node": {"uuid": "n-1", "target_raid_config": config}});
    let r = execute(&mut api, &mut host, "clean", step, node);
    assert_eq!(r["command_status"], "RUNNING", "{r}");
    let job = api.take_job().unwrap();
    let Work::Raid { op, kind, .. } = &job.work else {
        panic!("{job:?}")
    };
    assert_eq!(
        (op, *kind),
        (&RaidOp::Create(config.clone()), StepKind::Clean)
    );
    api.finish(&job.id, Ok(json!({})));

    let step = json!({"step": "apply_configuration", "interface": "raid", "priority": 0,
                      "args": {"raid_config": config, "delete_existing": false}});
    let r = execute(&mut api, &mut host, "deploy", step, json!({}));
    assert_eq!(r["command_status"], "RUNNING", "{r}");
    let job = api.take_job().unwrap();
    let Work::Raid { op, .. } = &job.work else {
        panic!("{job:?}")
    };
    assert_eq!(op, &RaidOp::Apply(config, false));
    api.finish(&job.id, Ok(json!({})));

    let bad = json!({"step": "apply_configuration", "args": {"raid_config": "raid1"}});
    let error = refused_step(&mut api, &mut host, "deploy", bad, json!({}));
    assert_eq!(error["type"], "InvalidCommandParamsError", "{error}");
    // Not a clean step: the conductor's create/delete are.
    let error = refused_step(
        &mut api,
        &mut host,
        "clean",
        json!({"step": "apply_configuration"}),
        json!({}),
    );
    assert_eq!(error["type"], "HardwareManagerMethodNotFound", "{error}");
}
