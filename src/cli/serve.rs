//! `rivet serve`: answer HTTP on a NIC with rivet's own stack (the agent
//! API's status routes), to check that a provisioning host can reach rivet.

use super::args::Args;
use rivet::net::server::{Request, Response};
use serde_json::json;

const HELP_HEAD: &str = "\
rivet serve - answer HTTP with rivet's own TCP/IP over a raw NIC

USAGE:
    rivet serve --iface NAME [--ip CIDR --gw IP] [--port 9999] [--seconds N]

Routes: GET / and GET /v1/status (as ironic-python-agent answers them);
anything else gets a 404 with a JSON faultstring.

OPTIONS:
    --port N            TCP port [default: 9999]
    --seconds N         Stop after N seconds [default: run until killed]
";

/// The routes every rivet agent API answers.
pub fn status_routes(started_at: f64) -> impl FnMut(&Request) -> Response {
    move |req: &Request| {
        let path = req.path.trim_end_matches('/');
        match (req.method.as_str(), path) {
            ("GET", "") => Response::json(
                200,
                json!({"name": "rivet", "description": "rivet deploy agent", "versions": [{"id": "v1"}],
                       "default_version": {"id": "v1"}})
                .to_string(),
            ),
            ("GET", "/v1/status") => {
                Response::json(200, json!({"started_at": started_at, "version": rivet::VERSION}).to_string())
            }
            _ => Response::json(
                404,
                json!({"faultcode": "Client", "faultstring": format!("Not found: {} {}", req.method, req.path)}).to_string(),
            ),
        }
    }
}

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let mut opts = super::net::OPTIONS.to_vec();
    opts.extend(["port", "seconds"]);
    let args = Args::parse(argv, &opts, super::net::SWITCHES)?;
    if args.help {
        print!("{HELP_HEAD}{}", super::net::HELP);
        return Ok(());
    }
    args.required("iface")?;
    let port: u16 = args
        .get("port")
        .unwrap_or("9999")
        .parse()
        .map_err(|_| "--port: a TCP port")?;
    let seconds: Option<u64> = args
        .get("seconds")
        .map(|s| s.parse())
        .transpose()
        .map_err(|_| "--seconds: a number")?;
    let mut stack = super::net::stack(&args)?.expect("--iface checked");
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut handler = status_routes(started_at);
    let mut listener = stack.listen(port, 16);
    log::info!("serving HTTP on port {port}");
    let start = std::time::Instant::now();
    while seconds.is_none_or(|s| start.elapsed().as_secs() < s) {
        stack.serve(&mut listener, &mut handler);
        stack.idle(50);
    }
    Ok(())
}
