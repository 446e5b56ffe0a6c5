//! ironic-python-agent's command records and error bodies, as the
//! conductor reads them: a result has exactly `id`, `command_name` (the part
//! after the dot), `command_status`, `command_error` (null or an object) and
//! `command_result`; an error is a RESTError `{type, code, message,
//! details}` whose text is `"<message>: <details>"`.

use super::errors::RestError;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    /// The conductor's step list came from a different agent version.
    VersionMismatch,
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::VersionMismatch => "CLEAN_VERSION_MISMATCH",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult {
    pub id: String,
    /// Without the extension: `execute_deploy_step`, not `deploy.execute_deploy_step`.
    pub name: String,
    pub status: Status,
    pub error: Option<RestError>,
    pub result: Option<Value>,
}

impl CommandResult {
    pub fn running(id: String, name: &str) -> Self {
        CommandResult {
            id,
            name: name.to_string(),
            status: Status::Running,
            error: None,
            result: None,
        }
    }

    /// Records how a command ended. A bare string result is wrapped the way
    /// the real agent wraps it: `{"result": "<name>: <text>"}`.
    pub fn finish(&mut self, outcome: Result<Value, RestError>) {
        match outcome {
            Ok(Value::String(s)) => {
                self.result = Some(json!({"result": format!("{}: {s}", self.name)}));
                self.status = Status::Succeeded;
            }
            Ok(v) => {
                self.result = Some(v);
                self.status = Status::Succeeded;
            }
            Err(e) => {
                self.status = if e.kind == super::errors::IpaError::VersionMismatch {
                    Status::VersionMismatch
                } else {
                    Status::Failed
                };
                self.error = Some(e);
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.status != Status::Running
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "command_name": self.name,
            "command_status": self.status.name(),
            "command_error": self.error.as_ref().map(RestError::to_json),
            "command_result": self.result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_have_exactly_the_five_keys_and_object_errors() {
        let mut c = CommandResult::running("id-1".into(), "prepare_image");
        assert_eq!(
            c.to_json(),
            json!({"id": "id-1", "command_name": "prepare_image", "command_status": "RUNNING",
                   "command_error": null, "command_result": null})
        );
        c.finish(Ok(json!(
            "image (x) written to device /dev/vda root_uuid=u"
        )));
        assert_eq!(c.to_json()["command_status"], "SUCCEEDED");
        assert_eq!(
            c.to_json()["command_result"]["result"],
            "prepare_image: image (x) written to device /dev/vda root_uuid=u"
        );
        let mut f = CommandResult::running("id-2".into(), "execute_deploy_step");
        f.finish(Err(
            crate::agent::ironic::errors::IpaError::ImageChecksum.with("a != b")
        ));
        let j = f.to_json();
        assert_eq!(j["command_status"], "FAILED");
        assert_eq!(
            j["command_error"],
            json!({"type": "ImageChecksumError", "code": 500, "message": "Error verifying image checksum", "details": "a != b"})
        );
        assert_eq!(j.as_object().unwrap().len(), 5);
    }

    #[test]
    fn faults_read_like_the_real_agent() {
        assert_eq!(
            RestError::busy("execute_deploy_step").fault(),
            json!({"faultcode": "Client", "faultstring": "Agent is busy: executing command execute_deploy_step"})
        );
        assert_eq!(
            RestError::invalid_command("Unknown command: fly").fault()["faultstring"],
            "Invalid command: Unknown command: fly"
        );
        assert_eq!(RestError::execution("x").fault()["faultcode"], "Server");
    }
}
