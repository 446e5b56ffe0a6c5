//! The agent API as any host on the provisioning network can drive it, and
//! command bodies as a conductor (or an impostor with a stolen token) sends
//! them: arbitrary JSON in `POST /v1/commands`. Never a panic; every answer
//! is a JSON document with a real HTTP status; bounded memory; and no job
//! (disk writes, erase, power) ever comes out of a request without the
//! token. Jobs are only collected and marked done: nothing runs here.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::agent::ironic::api::{Api, Host};
use rivet::agent::ironic::token::AgentToken;
use rivet::net::server::{Conn, Event, Reply, Request, Response};

const TOKEN: &str = "fuzz-token";

struct NullHost;

impl Host for NullHost {
    fn sync(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn system_logs(&mut self) -> Result<String, String> {
        Ok(String::new())
    }
}

fn check(resp: &Response) {
    assert!((100..600).contains(&resp.status), "status {}", resp.status);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&resp.body).is_ok(),
        "not JSON: {}",
        String::from_utf8_lossy(&resp.body)
    );
}

fn serve(api: &mut Api, req: &Request) {
    let with_token = req.query_param("agent_token").as_deref() == Some(TOKEN);
    match api.handle(req, &mut NullHost) {
        Reply::Now(resp) => check(&resp),
        Reply::Later(ticket) => {
            assert!(with_token, "deferred without the token");
            if let Some(resp) = api.resume(ticket) {
                check(&resp);
            }
        }
    }
    while let Some(job) = api.take_job() {
        assert!(with_token, "a job without the token: {job:?}");
        api.finish(&job.id, Ok(serde_json::json!({})));
    }
}

fuzz_target!(|data: &[u8]| {
    guard::bounded(16 * guard::MIB, || {
        let mut api = Api::new(Some(AgentToken::new(TOKEN)), 0.0, 7);
        match data.split_first() {
            // Odd first byte: the rest is a command body, sent with the
            // token (wait=true every other input), then the list is read.
            Some((b, body)) if b % 2 == 1 => {
                let wait = if b % 4 == 1 { "true" } else { "false" };
                let mut req = Request {
                    method: "POST".into(),
                    path: "/v1/commands/".into(),
                    query: format!("wait={wait}&agent_token={TOKEN}"),
                    headers: vec![("host".into(), "10.0.2.15:9999".into())],
                    body: body.to_vec(),
                };
                serve(&mut api, &req);
                serve(&mut api, &req);
                req.method = "GET".into();
                req.body.clear();
                serve(&mut api, &req);
            }
            // Even: the rest is raw bytes on the socket, through the codec.
            Some((_, raw)) => {
                let mut conn = Conn::new();
                let mut event = conn.feed(raw);
                while let Some(e) = event {
                    match e {
                        Event::Request(req) => serve(&mut api, &req),
                        Event::Reject(_) => break,
                    }
                    event = conn.feed(&[]);
                }
            }
            None => {}
        }
    });
});
