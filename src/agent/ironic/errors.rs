//! ironic-python-agent's errors, as the conductor sees them: each class
//! rivet raises ([`IpaError`], its name, HTTP code and fixed message
//! written once here) and the serialized error ([`RestError`]) a command
//! record or an API answer carries. A deploy's failure maps to its class
//! here too ([`from_failure`]).

use crate::agent::session::Failure;
use serde_json::{json, Value};

/// The error classes rivet raises, by ironic-python-agent's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpaError {
    InvalidCommandParams,
    InvalidCommand,
    CommandExecution,
    Deployment,
    Cleaning,
    Servicing,
    AgentIsBusy,
    NotFound,
    RequestedObjectNotFound,
    VersionMismatch,
    HardwareManagerMethodNotFound,
    ImageChecksum,
    ImageDownload,
    ImageWrite,
    DeviceNotFound,
    InvalidImage,
    BlockDeviceErase,
    SoftwareRaid,
}

impl IpaError {
    /// The exception class name, the HTTP code and the fixed message.
    const fn parts(self) -> (&'static str, u16, &'static str) {
        use IpaError::*;
        match self {
            InvalidCommandParams => (
                "InvalidCommandParamsError",
                400,
                "Invalid command parameters",
            ),
            InvalidCommand => ("InvalidCommandError", 400, "Invalid command"),
            CommandExecution => ("CommandExecutionError", 500, "Command execution failed"),
            Deployment => ("DeploymentError", 500, "Deploy step failed"),
            Cleaning => ("CleaningError", 500, "Clean step failed"),
            Servicing => ("ServicingError", 500, "Service step failed"),
            AgentIsBusy => ("AgentIsBusy", 409, "Agent is busy"),
            NotFound => ("NotFound", 404, "Not found"),
            RequestedObjectNotFound => ("RequestedObjectNotFoundError", 404, "Not found"),
            VersionMismatch => (
                "VersionMismatch",
                409,
                "Hardware managers version mismatch, reload agent with correct version",
            ),
            HardwareManagerMethodNotFound => (
                "HardwareManagerMethodNotFound",
                500,
                "No HardwareManager found to handle method",
            ),
            ImageChecksum => ("ImageChecksumError", 500, "Error verifying image checksum"),
            ImageDownload => ("ImageDownloadError", 500, "Error downloading image"),
            ImageWrite => ("ImageWriteError", 500, "Error writing image to device"),
            DeviceNotFound => (
                "DeviceNotFound",
                404,
                "Error finding the disk or partition device to deploy the image onto",
            ),
            InvalidImage => (
                "InvalidImage",
                500,
                "The provided image is not valid for use",
            ),
            BlockDeviceErase => ("BlockDeviceEraseError", 500, "Error erasing block device"),
            SoftwareRaid => (
                "SoftwareRAIDError",
                500,
                "Software RAID caused unknown error",
            ),
        }
    }

    pub const fn class(self) -> &'static str {
        self.parts().0
    }

    /// This error with what went wrong this time.
    pub fn with(self, details: impl Into<String>) -> RestError {
        RestError {
            kind: self,
            details: details.into(),
        }
    }
}

/// An error as ironic-python-agent serializes its `RESTError`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub kind: IpaError,
    pub details: String,
}

impl RestError {
    pub fn code(&self) -> u16 {
        self.kind.parts().1
    }

    pub fn message(&self) -> &'static str {
        self.kind.parts().2
    }

    pub fn invalid_params(details: impl Into<String>) -> Self {
        IpaError::InvalidCommandParams.with(details)
    }
    pub fn invalid_command(details: impl Into<String>) -> Self {
        IpaError::InvalidCommand.with(details)
    }
    pub fn execution(details: impl Into<String>) -> Self {
        IpaError::CommandExecution.with(details)
    }
    pub fn deployment(details: impl Into<String>) -> Self {
        IpaError::Deployment.with(details)
    }
    pub fn cleaning(details: impl Into<String>) -> Self {
        IpaError::Cleaning.with(details)
    }
    pub fn busy(running: &str) -> Self {
        IpaError::AgentIsBusy.with(format!("executing command {running}"))
    }
    pub fn not_found(what: &str, id: &str) -> Self {
        IpaError::NotFound.with(format!("{what} with id {id} not found."))
    }

    pub fn to_json(&self) -> Value {
        json!({"type": self.kind.class(), "code": self.code(), "message": self.message(), "details": self.details})
    }

    /// The API's error body: WSME's `{faultcode, faultstring}`.
    pub fn fault(&self) -> Value {
        fault(
            self.code(),
            &format!("{}: {}", self.message(), self.details),
        )
    }
}

/// `{faultcode, faultstring}` as the agent API answers errors.
pub fn fault(code: u16, faultstring: &str) -> Value {
    json!({"faultcode": if code >= 500 { "Server" } else { "Client" }, "faultstring": faultstring})
}

/// A deploy failure as the real agent names it (the conductor logs the
/// class and shows the message and details to the operator).
pub fn from_failure(f: Failure) -> RestError {
    match f.step {
        "checksum" => IpaError::ImageChecksum.with(f.error),
        "image" => IpaError::ImageDownload.with(f.error),
        "disk" => IpaError::DeviceNotFound.with(f.error),
        "validate" | "plan" => RestError::invalid_params(f.error),
        "memory" => RestError::execution(f.error),
        _ => IpaError::ImageWrite.with(f.error),
    }
}
